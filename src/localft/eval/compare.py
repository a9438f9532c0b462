"""Several models on one test set, side by side: what each tutorial builds by hand at the end.

Every model is run with `localft.eval.runner` (over the endpoint, or in-process), the TF-IDF baseline is trained
on the same training file, and the result is one table and one plot with the headline score beside the cost:
training time, CPU seconds per 1,000 classifications (when the model runs in this process) and memory.

    compare.json / compare.md / compare.png, and one report folder per model (see localft.eval.report)
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from localft.eval.baseline import BASELINE_NAME, BASELINES, fit_baseline, run_baseline
from localft.eval.report import EvalReport, build_report
from localft.eval.runner import RunOptions, run_model
from localft.eval.testset import Example, TestSet
from localft.remote import Send
from localft.text_table import text_table

ZERO_SHOT_PROMPT = "Classify the text. Answer with exactly one of these labels and nothing else: {labels}."
ZERO_SHOT_MULTI_PROMPT = (
    "List every label that applies to the text, separated by '{separator}', or answer '{none}' if none applies. "
    "Labels: {labels}."
)


@dataclass(frozen=True)
class CompareRow:
    """One model's line in the comparison."""

    name: str
    kind: str
    report: EvalReport
    train_s: float | None = None
    """Fine-tuning wall time (job created -> finished), or the baseline's fit time."""
    model_mb: float | None = None

    def to_dict(self) -> dict[str, Any]:
        r = self.report
        return {
            "name": self.name,
            "kind": self.kind,
            "headline": r.headline,
            "macro_f1": r.metrics.macro_f1,
            "n_out_of_set": r.metrics.n_out_of_set,
            "failures": r.failures,
            "train_s": self.train_s,
            "cpu_s_per_1k": r.cpu_s_per_1k,
            "wall_s_per_1k": r.wall_s / r.answered_in_run * 1000 if r.answered_in_run else None,
            "latency_p50_s": r.latency.p50_s,
            "throughput_per_s": r.latency.throughput_per_s,
            "peak_rss_mb": r.peak_rss_mb,
            "model_mb": self.model_mb,
        }


@dataclass(frozen=True)
class Comparison:
    """The rows, in the order they were asked for (baseline last)."""

    testset: str
    task: str
    n: int
    rows: list[CompareRow] = field(default_factory=list)

    @property
    def metric(self) -> str:
        return "accuracy" if self.task == "single_label" else "micro F1"

    def to_dict(self, *, with_reports: bool = False) -> dict[str, Any]:
        """The table as data; `with_reports` nests each model's full report (what the dashboard draws)."""
        rows = []
        for row in self.rows:
            data = row.to_dict()
            if with_reports:
                data["report"] = row.report.to_dict()
            rows.append(data)
        return {
            "object": "localft.comparison",
            "testset": self.testset,
            "task": self.task,
            "n": self.n,
            "metric": self.metric,
            "rows": rows,
        }

    def table(self) -> tuple[list[str], list[list[str]]]:
        header = [
            "model",
            "kind",
            self.metric,
            "macro F1",
            "out of set",
            "train s",
            "CPU s/1k",
            "wall s/1k",
            "p50 s",
            "peak RSS MB",
        ]
        rows = []
        for row in self.rows:
            d = row.to_dict()
            rows.append(
                [
                    row.name,
                    row.kind,
                    f"{d['headline']:.3f}",
                    f"{d['macro_f1']:.3f}",
                    str(d["n_out_of_set"]),
                    _num(d["train_s"], 1),
                    _num(d["cpu_s_per_1k"], 1),
                    _num(d["wall_s_per_1k"], 1),
                    _num(d["latency_p50_s"], 3),
                    _num(d["peak_rss_mb"], 0),
                ]
            )
        return header, rows

    def to_markdown(self) -> str:
        header, rows = self.table()
        lines = [f"Comparison on {self.testset} ({self.n} examples, {self.task.replace('_', '-')})", ""]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "|".join("---" for _ in header) + "|")
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines) + "\n"

    def summary_lines(self) -> list[str]:
        header, rows = self.table()
        return text_table(header, rows).split("\n")

    def save(self, folder: Path, *, plots: bool = True) -> list[Path]:
        """compare.json, compare.md, compare.png and a report folder per model."""
        folder.mkdir(parents=True, exist_ok=True)
        written = [folder / "compare.json", folder / "compare.md"]
        written[0].write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        written[1].write_text(self.to_markdown(), encoding="utf-8")
        for row in self.rows:
            written.extend(row.report.save(folder / _slug(row.name), plots=plots))
        if plots:
            from localft.eval.plots import plot_comparison

            names = [row.name for row in self.rows]
            values = [row.report.headline for row in self.rows]
            title = f"{self.metric} on {self.testset} (n={self.n})"
            written.append(plot_comparison(names, values, self.metric, folder / "compare.png", title))
        return written


def _num(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_")[:80] or "model"


def model_kind(model: str) -> str:
    """`zero-shot base`, `fine-tuned LLM`, `fine-tuned encoder`, `fine-tuned classifier` (a pooled classifier), or
    plain `fine-tuned` (an `auto` job's model, whose id does not say what it chose) from a model id or folder."""
    from localft.base_models import AUTO, get_spec, resolve_alias
    from localft.training.checkpoint import META_FILE, read_checkpoint

    family: str | None = None
    if (Path(model) / META_FILE).is_file():
        family = read_checkpoint(Path(model)).family
    elif model.startswith("ft:"):
        base = model.split(":")[1]
        spec = None if resolve_alias(base) == AUTO else get_spec(base)
        family = spec.family if spec is not None else "unknown"
    if family is None:
        return "zero-shot base"
    kinds = {"causal_lm": "fine-tuned LLM", "encoder": "fine-tuned encoder", "classifier": "fine-tuned classifier"}
    return kinds.get(family, "fine-tuned")


def zero_shot_prompt(testset: TestSet) -> str:
    """The system prompt given to base models on examples that carry none: the labels and how to answer."""
    fmt = testset.answer_format
    labels = ", ".join(testset.labels)
    if fmt.multi_label:
        return ZERO_SHOT_MULTI_PROMPT.format(separator=fmt.separator, none=fmt.none_label, labels=labels)
    return ZERO_SHOT_PROMPT.format(labels=labels)


def evaluate_model(
    testset: TestSet,
    model: str,
    *,
    options: RunOptions | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    send: Send | None = None,
    local: bool = False,
    train_s: float | None = None,
) -> EvalReport:
    """Run and score one model. Zero-shot base models get `zero_shot_prompt` on examples without a system
    message; fine-tuned models see exactly the test set's messages."""
    kind = model_kind(model)
    prompt = zero_shot_prompt(testset) if kind == "zero-shot base" else None
    opts = replace(options or RunOptions(), system_prompt=prompt)
    run = run_model(model, testset, base_url=base_url, api_key=api_key, send=send, options=opts, local=local)
    return build_report(testset, run, extra={"kind": kind, "train_s": train_s, "zero_shot_prompt": prompt})


def compare_models(
    testset: TestSet,
    models: Sequence[str],
    *,
    train: list[Example] | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    sender: Callable[[str], Send] | None = None,
    options: RunOptions | None = None,
    local: bool = False,
    cache_dir: Path | None = None,
    training_times: dict[str, float] | None = None,
    log: Callable[[str], None] | None = None,
    baselines: Sequence[str] = (BASELINE_NAME,),
) -> Comparison:
    """Score each model (and the `baselines`, keys of `eval.baseline.BASELINES`, when `train` is given) on
    `testset`.

    `sender(model)` gives an in-process transport per model; `local=True` says the models run in this process
    (in-process or an embedded server), so CPU seconds and memory are theirs. `training_times` maps model ids to
    fine-tuning wall seconds (see `job_training_times`). Each model's answers are cached in `cache_dir`.
    """
    base_options = options or RunOptions()
    task = "multi_label" if testset.multi_label else "single_label"
    comparison = Comparison(testset.name, task, len(testset.examples))
    for model in models:
        if log:
            log(f"evaluating {model} ({model_kind(model)}) on {len(testset.examples)} examples")
        cache = cache_dir / f"{_slug(model)}.jsonl" if cache_dir is not None else None
        train_s = (training_times or {}).get(model)
        report = evaluate_model(
            testset,
            model,
            options=replace(base_options, cache_path=cache),
            base_url=base_url,
            api_key=api_key,
            send=sender(model) if sender is not None else None,
            local=local,
            train_s=train_s,
        )
        comparison.rows.append(CompareRow(model, str(report.extra["kind"]), report, train_s=train_s))
    for kind in baselines if train is not None else ():
        assert train is not None
        if log:
            log(f"training the {BASELINES[kind]} baseline on {len(train)} examples")
        baseline = fit_baseline(train, testset, kind=kind)
        extra = {"kind": "baseline", "train_s": baseline.train_s, "model_mb": baseline.model_mb}
        report = build_report(testset, run_baseline(baseline, testset), extra=extra)
        comparison.rows.append(
            CompareRow(kind, BASELINES[kind], report, train_s=baseline.train_s, model_mb=baseline.model_mb)
        )
    return comparison


def job_training_times(base_url: str | None, api_key: str | None = None) -> dict[str, float]:
    """Fine-tuned model id -> seconds from job creation to finish, read from the fine-tuning jobs list."""
    import openai

    client = openai.OpenAI(base_url=base_url, api_key=api_key or "not-needed")
    times: dict[str, float] = {}
    for job in client.fine_tuning.jobs.list(limit=100):
        if job.fine_tuned_model and job.finished_at and job.created_at:
            times[job.fine_tuned_model] = float(job.finished_at - job.created_at)
    return times
