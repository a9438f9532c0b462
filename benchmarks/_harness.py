"""What the experiment scripts share: an embedded server, fine-tuning through the public API, comparisons, and
writing measured tables into BENCHMARKS.md.

Everything goes through the OpenAI-compatible API of a real localft server (`EmbeddedServer`, in this process so
its CPU time and memory are measurable): upload, create the job, poll it, then ask the fine-tuned model. State
lives in `LOCALFT_BENCH_HOME` (default `~/.cache/localft-bench/<experiment>`): a job that already succeeded
with the same suffix and base model is reused, so an interrupted benchmark continues instead of retraining.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import platform
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openai

from localft.eval.baseline import BASELINE_NAME
from localft.eval.compare import Comparison, compare_models
from localft.eval.runner import RunOptions
from localft.eval.testset import AnswerFormat, Example, TestSet, load_testset, read_examples

REPO = Path(__file__).resolve().parent.parent
DATASETS = REPO.parent / "shared" / "datasets"
BENCHMARKS_MD = REPO / "BENCHMARKS.md"
RESULTS = REPO / "benchmarks" / "results"
LLM = "smollm2-135m-instruct"
ENCODER = "minilm-l6"


def llm_enabled() -> bool:
    """`LOCALFT_BENCH_LLM=0` leaves out the LLM fine-tunes and zero-shot rows (hours of CPU on a busy machine)."""
    return os.environ.get("LOCALFT_BENCH_LLM", "1") != "0"


def finetune_enabled() -> bool:
    """`LOCALFT_BENCH_FINETUNE=0` runs no fine-tune at all: only the baseline (and zero-shot rows, if enabled)."""
    return os.environ.get("LOCALFT_BENCH_FINETUNE", "1") != "0"


LLM_SKIPPED = "LLM rows (zero-shot and fine-tuned): not measured in this run (`LOCALFT_BENCH_LLM=0`)."


def bench_command(name: str) -> str:
    """The command that produced a table, with the `LOCALFT_BENCH_*` settings of this run."""
    settings = " ".join(
        f"{k}={v}"
        for k, v in sorted(os.environ.items())
        if k.startswith("LOCALFT_BENCH_") and k != "LOCALFT_BENCH_HOME"
    )
    return f"{settings} python -m benchmarks {name}".strip()


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


class RecordingSink:
    """The `EventSink` the benchmarks that train in-process hand `run_training`: it keeps the run's log lines, when
    each step's metrics came, its last epoch-end classification metrics and its last checkpoint's folder, and never
    asks to stop."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.metric_times: list[float] = []
        self.metrics: Any = None
        self.checkpoint: Path | None = None

    def log(self, message: str, level: str = "info") -> None:
        self.lines.append(message)

    def log_metrics(self, metrics: Any) -> None:
        self.metric_times.append(time.perf_counter())
        if metrics.classification:
            self.metrics = metrics

    def on_checkpoint(self, checkpoint: Any) -> None:
        self.checkpoint = checkpoint.path

    def should_stop(self) -> bool:
        return False


def kernels_switch(model: Any) -> Callable[[bool], None]:
    """Switches `localft.training.kernels` on and off for a model, in one process: off, no pass is short enough for
    eager attention and the fast dropout modules behave as torch's own (the class swap keeps their `p` and
    `training`). The A/B rows of bench_training and bench_batching use it."""
    from torch import nn

    import localft.training.kernels as kernels

    eager_max_width = kernels.EAGER_MAX_WIDTH
    swapped = [m for m in model.modules() if isinstance(m, kernels.FastDropout)]

    def switch(on: bool) -> None:
        kernels.EAGER_MAX_WIDTH = eager_max_width if on else 0
        for module in swapped:
            module.__class__ = kernels.FastDropout if on else nn.Dropout

    return switch


def compiled_switch(learner: Any) -> Callable[[bool], None]:
    """Switches `localft.training.compilation` on and off for a learner whose layers it wrapped: off, each layer runs
    its original forward, and the learner picks attention as for uncompiled layers. `bench_training --alternate
    compiled` uses it."""
    from localft.training.compilation import repeated_layers

    wrapped = [(layer, layer.forward) for layer in repeated_layers(learner.model)]

    def switch(on: bool) -> None:
        learner.compiled_layers = on
        for layer, passes in wrapped:
            layer.forward = passes if on else passes.eager

    return switch


def skip_casts_switch(model: Any) -> Callable[[bool], None]:
    """Switches `lora_causal.skip_adapter_input_casts` on (the engine's default) and off for a LoRA model: off, peft
    casts each adapter layer's input to fp32 again. The A/B rows of bench_training use it."""
    layers = [m for m in model.modules() if hasattr(m, "cast_input_dtype_enabled")]

    def switch(on: bool) -> None:
        for layer in layers:
            layer.cast_input_dtype_enabled = not on

    return switch


def attention_dropout_switch(model: Any) -> Callable[[bool], None]:
    """Switches an encoder's attention dropout between the engine's choice (`encoder_head.ATTENTION_DROPOUT`, on)
    and the model's own from its pretrained config (off). `bench_training --alternate attention-dropout` uses it."""
    from localft.training.encoder_head import ATTENTION_DROPOUT, ATTENTION_DROPOUT_FIELDS

    return _dropout_switch(model, ATTENTION_DROPOUT, ATTENTION_DROPOUT_FIELDS, attention=True)


def hidden_dropout_switch(model: Any) -> Callable[[bool], None]:
    """Switches an encoder's hidden-state dropout between the engine's choice (`encoder_head.HIDDEN_DROPOUT`, on)
    and the model's own from its pretrained config (off). `bench_training --alternate hidden-dropout` uses it."""
    from localft.training.encoder_head import HIDDEN_DROPOUT, HIDDEN_DROPOUT_FIELDS

    return _dropout_switch(model, HIDDEN_DROPOUT, HIDDEN_DROPOUT_FIELDS, attention=False)


def _dropout_switch(model: Any, chosen: float | None, fields: Sequence[str], attention: bool) -> Callable[[bool], None]:
    """Sets the dropout modules of the attention weights (`attention`) or of the hidden states (the others) to the
    engine's `chosen` probability (on) or the one the pretrained config gives in `fields` (off)."""
    from torch import nn

    pretrained = type(model.config).from_pretrained(model.config._name_or_path)
    own = next(float(getattr(pretrained, f)) for f in fields if hasattr(pretrained, f))
    ours = own if chosen is None else chosen
    in_attention = {
        id(m.dropout) for m in model.modules() if type(m).__name__.endswith("SelfAttention") and hasattr(m, "dropout")
    }
    dropouts = [m for m in model.modules() if isinstance(m, nn.Dropout) and (id(m) in in_attention) == attention]

    def switch(on: bool) -> None:
        for dropout in dropouts:
            dropout.p = ours if on else own

    return switch


def word_embeddings_switch(model: Any) -> Callable[[bool], None]:
    """Switches whether an encoder's word embeddings train: on, as the engine chose
    (`encoder_head.TRAIN_WORD_EMBEDDINGS`), off, the other way. `bench_training --alternate word-embeddings` uses
    it."""
    from localft.training.encoder_head import TRAIN_WORD_EMBEDDINGS

    weight = model.get_input_embeddings().weight

    def switch(on: bool) -> None:
        weight.requires_grad_(TRAIN_WORD_EMBEDDINGS if on else not TRAIN_WORD_EMBEDDINGS)

    return switch


def dataset_rows(path: str, limit: int | None = None, **reader: Any) -> list[dict[str, str]]:
    """The rows of a CSV or TSV file of ../shared/datasets (`path` below it), the first `limit` of them; `reader`:
    `csv.DictReader`'s options the file needs (`delimiter`, `quoting`)."""
    with (DATASETS / path).open(newline="", encoding="utf-8") as f:
        return list(itertools.islice(csv.DictReader(f, **reader), limit))


def write_chat_jsonl(path: Path, rows: Sequence[tuple[str, str]], system: str | None) -> Path:
    """Chat fine-tuning lines: optional system prompt, the text as the user, the answer as the assistant."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for text, answer in rows:
            messages = [{"role": "system", "content": system}] if system else []
            messages += [{"role": "user", "content": text}, {"role": "assistant", "content": answer}]
            fh.write(json.dumps({"messages": messages}, ensure_ascii=False) + "\n")
    return path


@dataclass
class FineTune:
    """A fine-tuned model made through the API."""

    model_id: str
    base_model: str
    job_id: str
    train_s: float
    """Job wall time on the server clock: created -> finished."""
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    reused: bool = False


class Bench:
    """A running server for one experiment, and the helpers that talk to it."""

    def __init__(self, name: str, base_url: str, workdir: Path) -> None:
        self.name = name
        self.base_url = base_url
        self.workdir = workdir
        self.client = openai.OpenAI(base_url=base_url, api_key="bench", max_retries=2, timeout=600)
        self.failures: list[str] = []
        """Fine-tunes that did not succeed: reported in BENCHMARKS.md instead of a row."""

    def try_fine_tune(self, base_model: str, train: Path, *, suffix: str, **kwargs: Any) -> FineTune | None:
        """`fine_tune`, but a failed job is recorded in `failures` and the experiment goes on without it."""
        if not finetune_enabled():
            self.failures.append(f"`{base_model}` fine-tune `{suffix}`: not run (`LOCALFT_BENCH_FINETUNE=0`)")
            return None
        try:
            return self.fine_tune(base_model, train, suffix=suffix, **kwargs)
        except (RuntimeError, openai.OpenAIError) as exc:
            log(f"fine-tune {suffix} failed: {exc}")
            self.failures.append(f"`{base_model}` fine-tune `{suffix}`: {exc}")
            return None

    def fine_tune(
        self,
        base_model: str,
        train: Path,
        *,
        suffix: str,
        validation: Path | None = None,
        seed: int = 0,
        hyperparameters: dict[str, Any] | None = None,
        poll_s: float = 5.0,
    ) -> FineTune:
        """Upload, create the job, wait for it. A job of the same suffix and base model that succeeded is reused,
        one still in progress (e.g. resumed after this script was interrupted) is followed instead of repeated."""
        for job in self.client.fine_tuning.jobs.list(limit=100):
            if job.model != base_model or getattr(job, "user_provided_suffix", None) != suffix:
                continue
            if job.status == "succeeded" and job.fine_tuned_model and job.finished_at:
                log(f"reusing {job.fine_tuned_model} ({job.id})")
                return FineTune(
                    job.fine_tuned_model,
                    base_model,
                    job.id,
                    float(job.finished_at - job.created_at),
                    dict(job.hyperparameters.to_dict()),
                    reused=True,
                )
            if job.status in ("validating_files", "queued", "running"):
                log(f"following {job.id}, still {job.status}")
                return self._wait(job.id)
        with train.open("rb") as fh:
            train_id = self.client.files.create(file=fh, purpose="fine-tune").id
        method: Any = {"type": "supervised", "supervised": {"hyperparameters": hyperparameters or {}}}
        extra: dict[str, Any] = {}
        if validation is not None:
            with validation.open("rb") as fh:
                extra["validation_file"] = self.client.files.create(file=fh, purpose="fine-tune").id
        job = self.client.fine_tuning.jobs.create(
            model=base_model,
            training_file=train_id,
            suffix=suffix,
            seed=seed,
            method=method,
            **extra,
        )
        log(f"job {job.id}: {base_model} on {train.name} (suffix {suffix})")
        return self._wait(job.id, poll_s)

    def _wait(self, job_id: str, poll_s: float = 5.0) -> FineTune:
        """Poll a job to its end, logging each new event message; raise if it did not succeed."""
        job = self.client.fine_tuning.jobs.retrieve(job_id)
        last = ""
        while job.status not in ("succeeded", "failed", "cancelled"):
            time.sleep(poll_s)
            job = self.client.fine_tuning.jobs.retrieve(job.id)
            events = self.client.fine_tuning.jobs.list_events(job.id, limit=1).data
            if events and events[0].message != last:
                last = events[0].message
                log(f"  {job.status}: {last}")
        if job.status != "succeeded" or not job.fine_tuned_model or not job.finished_at:
            raise RuntimeError(f"job {job.id} ended {job.status}: {job.error}")
        train_s = float(job.finished_at - job.created_at)
        log(f"  -> {job.fine_tuned_model} in {train_s:.0f}s")
        return FineTune(job.fine_tuned_model, job.model, job.id, train_s, dict(job.hyperparameters.to_dict()))

    def compare(
        self,
        testset: TestSet,
        models: Sequence[str],
        *,
        train: list[Example] | None,
        training_times: dict[str, float],
        tag: str,
        cache_tag: str | None = None,
        concurrency: int = 4,
        baselines: Sequence[str] = (BASELINE_NAME,),
    ) -> Comparison:
        """Score models (and TF-IDF when `train` is given) on the test set. Reports go to `reports/<tag>`; answers
        are cached in `answers/<cache_tag or tag>`, so tests sharing examples can share answers."""
        comparison = compare_models(
            testset,
            list(models),
            train=train,
            base_url=self.base_url,
            api_key="bench",
            options=RunOptions(concurrency=concurrency, progress=False, timeout=600),
            local=True,
            cache_dir=self.workdir / "answers" / (cache_tag or tag),
            training_times=training_times,
            log=log,
            baselines=baselines,
        )
        comparison.save(self.workdir / "reports" / tag, plots=True)
        for line in comparison.summary_lines():
            log(line)
        return comparison

    def compare_fine_tunes(
        self, testset: TestSet, tunes: Sequence[FineTune], *, zero_shot: Sequence[str], train: Path, tag: str
    ) -> Comparison:
        """Score the zero-shot base models and the fine-tunes, with TF-IDF trained on the fine-tunes' training
        file as the baseline every table starts from."""
        return self.compare(
            testset,
            [*zero_shot, *(t.model_id for t in tunes)],
            train=examples(train),
            training_times={t.model_id: t.train_s for t in tunes},
            tag=tag,
        )


def succeeded(attempts: Iterable[FineTune | None]) -> list[FineTune]:
    """The fine-tunes that finished; `try_fine_tune` gave None for the others and recorded them in `failures`."""
    return [tune for tune in attempts if tune is not None]


@contextmanager
def bench_server(name: str) -> Iterator[Bench]:
    """An embedded server with its own data folder for this experiment (kept between runs for reuse)."""
    from localft.api.server import EmbeddedServer
    from localft.settings import Settings

    # 2 cores, shared: the server applies this in its worker and request threads (settings.threads)
    os.environ.setdefault("LOCALFT_THREADS", "2")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    root = Path(os.environ.get("LOCALFT_BENCH_HOME", Path.home() / ".cache" / "localft-bench"))
    home = root / name
    settings = Settings.from_env(home=home / "localft")
    settings.ensure_dirs()
    with EmbeddedServer(settings) as server:
        log(f"{name}: server at {server.base_url}, data in {home}")
        yield Bench(name, server.base_url, home)


def testset_from(path: Path, labels: Sequence[str], *, multi_label: bool = False) -> TestSet:
    """Lenient matching: `Negative.` counts as `negative` (only zero-shot models need it; fine-tunes answer exactly)."""
    fmt = AnswerFormat(multi_label=multi_label, normalize="lenient")
    return load_testset(path, answer_format=fmt, labels=list(labels), multi_label=multi_label)


def examples(path: Path) -> list[Example]:
    return read_examples(path)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    return f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}"


def save_results(name: str, data: dict[str, Any]) -> Path:
    """benchmarks/results/<name>.json: the measured rows behind the BENCHMARKS.md tables."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def write_section(name: str, markdown: str) -> None:
    """Replace the block between `<!-- bench:NAME -->` markers in BENCHMARKS.md (added at the end if absent)."""
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{start}\n{markdown.rstrip()}\n{end}"
    text = BENCHMARKS_MD.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    BENCHMARKS_MD.write_text(text, encoding="utf-8")


def publish_section(name: str, lines: list[str], failures: str) -> None:
    """Write an experiment's BENCHMARKS.md section: its lines, then what was not measured (failed fine-tunes, the
    LLM rows when `LOCALFT_BENCH_LLM=0`)."""
    lines = [*lines, failures]
    if not llm_enabled():
        lines += [LLM_SKIPPED, ""]
    write_section(name, "\n".join(lines))
    log(f"{name}: wrote BENCHMARKS.md and benchmarks/results/{name}.json")


def pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def failures_note(bench: Bench) -> str:
    if not bench.failures:
        return ""
    items = "\n".join(f"- {f}" for f in bench.failures)
    return f"Not measured in this run (the fine-tune failed or was not run):\n\n{items}\n"


def comparison_table(comparison: Comparison | dict[str, Any], published: dict[str, str] | None = None) -> str:
    """The Markdown rows of one comparison (or of its saved `to_dict()` form): score, macro F1, out-of-set answers,
    training and inference cost."""
    saved = comparison if isinstance(comparison, dict) else comparison.to_dict()
    metric = saved["metric"]
    header = (
        f"| model | kind | {metric} | macro F1 | out of set | train wall s | CPU s / 1k | wall s / 1k | "
        "throughput /s | peak RSS MB |"
    )
    lines = [header, "|---|---|---|---|---|---|---|---|---|---|"]
    for d in saved["rows"]:
        lines.append(
            f"| `{d['name']}` | {d['kind']} | {pct(d['headline'])} | {num(d['macro_f1'], 3)} | {d['n_out_of_set']} | "
            f"{num(d['train_s'])} | {num(d['cpu_s_per_1k'])} | {num(d['wall_s_per_1k'])} | "
            f"{num(d['throughput_per_s'])} | {num(d['peak_rss_mb'], 0)} |"
        )
    for name, figure in (published or {}).items():
        lines.append(f"| {name} (published) | tutorial | {figure} | | | | | | | |")
    return "\n".join(lines)
