"""Distillation: a teacher labels data, a cheaper student is fine-tuned on it, both are scored side by side.

The teacher is any OpenAI-compatible endpoint; the student is fine-tuned and served by a localft server. Both are
scored on the same held-out texts (against gold labels when there are some, else against the teacher's own
labels, which then measures agreement). Cost per model comes from a price table (USD per million prompt and
completion tokens) when the model is in it; a model served on this machine without a price is charged for its
CPU seconds at `cpu_hour_usd`: measured with `time.process_time()` when the server runs inside this process,
else approximated by the summed request latencies (an upper bound for a server answering one request at a time).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import openai

from localft.eval.metrics import classification_metrics, latency_stats
from localft.labeling.answers import parse_label
from localft.labeling.labeler import label_request, label_texts, system_prompt, write_chat_jsonl, write_rejected
from localft.labeling.synth import synthesize, write_examples
from localft.remote import RemoteCaller, answer_text
from localft.text_table import text_table

DEFAULT_CPU_HOUR_USD = 0.05
"""Assumed price of one CPU-hour for local models (set your own with `cpu_hour_usd` / `--cpu-hour-usd`)."""


@dataclass(frozen=True)
class Price:
    """USD per million tokens."""

    prompt: float
    completion: float

    @classmethod
    def parse(cls, spec: str) -> tuple[str, Price]:
        """`MODEL=PROMPT,COMPLETION` (USD per million tokens), e.g. `gpt-4o-mini=0.15,0.60`."""
        model, sep, prices = spec.rpartition("=")
        parts = prices.split(",")
        try:
            if not sep or not model or len(parts) != 2:
                raise ValueError
            return model, cls(float(parts[0]), float(parts[1]))
        except ValueError:
            raise ValueError(f"price {spec!r} is not MODEL=PROMPT_USD,COMPLETION_USD per million tokens") from None


@dataclass(frozen=True)
class ModelScore:
    """One model on the held-out set: quality, speed, tokens and what it cost."""

    role: str
    model: str
    n: int
    accuracy: float
    macro_f1: float
    out_of_set: int
    """Answers that were not one of the labels (counted wrong)."""
    failed: int
    """Requests that never got an answer."""
    latency_p50_s: float | None
    latency_mean_s: float | None
    prompt_tokens: int
    completion_tokens: int
    cpu_seconds: float | None
    cost_usd: float | None
    cost_basis: str
    """"price table", "CPU seconds (measured)", "CPU seconds (latency upper bound)" or "unpriced"."""


@dataclass(frozen=True)
class Endpoint:
    """Where a model is served and how its cost is counted."""

    caller: RemoteCaller
    local: bool
    """Served on this machine (priced by CPU seconds when it has no price)."""
    in_process: bool = False
    """Served by a server running inside this process, so `process_time` measures its CPU."""


@dataclass(frozen=True)
class DistillResult:
    """What `distill` did and how the two models compare."""

    scores: list[ModelScore]
    reference: str
    """"gold labels", or "teacher labels (agreement)" when the held-out texts had none."""
    train_examples: int
    validation_examples: int
    train_rejected: int
    test_examples: int
    job_id: str
    student_model: str | None
    job_status: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def score_model(
    role: str,
    model: str,
    endpoint: Endpoint,
    requests: Sequence[dict[str, Any]],
    reference: Sequence[str],
    labels: Sequence[str],
    *,
    prices: Mapping[str, Price],
    cpu_hour_usd: float = DEFAULT_CPU_HOUR_USD,
) -> ModelScore:
    """Send the held-out requests and score the answers against `reference`."""
    caller = endpoint.caller
    tokens_before = (caller.stats.prompt_tokens, caller.stats.completion_tokens)
    cpu_before, wall_before = time.process_time(), caller.stats.wall_s
    results = caller.chat(requests)
    cpu_used = time.process_time() - cpu_before
    wall = caller.stats.wall_s - wall_before
    predictions = [parse_label(answer_text(r.response), labels) if r.response else None for r in results]
    shown = [p if p is not None else "(unparsed)" for p in predictions]
    metrics = classification_metrics(list(reference), shown, labels)
    latency = latency_stats([r.latency_s for r in results], wall)
    prompt_tokens = caller.stats.prompt_tokens - tokens_before[0]
    completion_tokens = caller.stats.completion_tokens - tokens_before[1]
    cpu_seconds: float | None = None
    if model in prices:
        price = prices[model]
        cost: float | None = (prompt_tokens * price.prompt + completion_tokens * price.completion) / 1e6
        basis = "price table"
    elif endpoint.local:
        measured = endpoint.in_process
        cpu_seconds = cpu_used if measured else sum(r.latency_s or 0.0 for r in results)
        cost = cpu_seconds / 3600 * cpu_hour_usd
        basis = "CPU seconds (measured)" if measured else "CPU seconds (latency upper bound)"
    else:
        cost, basis = None, "unpriced"
    return ModelScore(
        role=role,
        model=model,
        n=metrics.n,
        accuracy=metrics.accuracy,
        macro_f1=metrics.macro_f1,
        out_of_set=metrics.n_out_of_set,
        failed=sum(1 for r in results if not r.ok),
        latency_p50_s=latency.p50_s,
        latency_mean_s=latency.mean_s,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        cpu_seconds=cpu_seconds,
        cost_usd=cost,
        cost_basis=basis,
    )


def teacher_requests(texts: Sequence[str], labels: Sequence[str], model: str, seed: int) -> list[dict[str, Any]]:
    """The teacher is asked exactly as when it labelled (shuffled options), so its score is its labelling quality."""
    return [label_request(text, labels, model=model, seed=seed) for text in texts]


def student_requests(texts: Sequence[str], labels: Sequence[str], model: str) -> list[dict[str, Any]]:
    """The student sees the fixed system prompt it was trained with."""
    system = system_prompt(labels)
    return [
        {
            "model": model,
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": text}],
            "temperature": 0,
            "max_tokens": 32,
        }
        for text in texts
    ]


def fine_tune_student(
    client: openai.OpenAI,
    training_file: Path,
    base_model: str,
    *,
    validation_file: Path | None = None,
    hyperparameters: Mapping[str, Any] | None = None,
    suffix: str | None = "distilled",
    wait: Callable[[str], Any] | None = None,
    poll_seconds: float = 1.0,
) -> Any:
    """Upload the teacher-labelled file(s), start a job and wait for it (with `wait(job_id)` when given)."""
    params: dict[str, Any] = {"model": base_model}
    for key, path in (("training_file", training_file), ("validation_file", validation_file)):
        if path is not None:
            with path.open("rb") as fh:
                params[key] = client.files.create(file=(path.name, fh), purpose="fine-tune").id
    if hyperparameters:
        params["method"] = {"type": "supervised", "supervised": {"hyperparameters": dict(hyperparameters)}}
    if suffix:
        params["suffix"] = suffix
    job = client.fine_tuning.jobs.create(**params)
    if wait is not None:
        return wait(job.id)
    while job.status not in ("succeeded", "failed", "cancelled"):
        time.sleep(poll_seconds)
        job = client.fine_tuning.jobs.retrieve(job.id)
    return job


def format_table(scores: Sequence[ModelScore]) -> str:
    """The side-by-side comparison as aligned text."""
    header = ("role", "model", "n", "accuracy", "macro_f1", "out_of_set", "p50 s", "tokens", "cost USD", "basis")
    rows = [header]
    for s in scores:
        rows.append(
            (
                s.role,
                s.model,
                str(s.n),
                f"{s.accuracy:.3f}",
                f"{s.macro_f1:.3f}",
                str(s.out_of_set),
                f"{s.latency_p50_s:.3f}" if s.latency_p50_s is not None else "-",
                str(s.prompt_tokens + s.completion_tokens),
                f"{s.cost_usd:.6f}" if s.cost_usd is not None else "-",
                s.cost_basis,
            )
        )
    return text_table(rows[0], rows[1:])


def distill(
    *,
    labels: Mapping[str, str | None],
    teacher: str,
    teacher_endpoint: Endpoint,
    student_base: str,
    client: openai.OpenAI,
    student_endpoint: Endpoint,
    output_dir: Path,
    pool: Sequence[tuple[str, str | None]],
    test: Sequence[tuple[str, str | None]] | None = None,
    holdout: float = 0.2,
    validation: float = 0.0,
    synth_per_class: int | None = None,
    seed: int = 0,
    hyperparameters: Mapping[str, Any] | None = None,
    prices: Mapping[str, Price] | None = None,
    cpu_hour_usd: float = DEFAULT_CPU_HOUR_USD,
    wait: Callable[[str], Any] | None = None,
) -> DistillResult:
    """Label (or synthesise and label) training texts with the teacher, fine-tune the student, score both.

    `pool` holds (text, gold label or None) rows; without `test`, a seeded `holdout` fraction of the pool (gold
    rows first) is held out, and synthetic texts only ever join the training side. A `validation` fraction of the
    teacher-labelled texts becomes the job's validation file (epoch-end metrics). Files written to `output_dir`:
    `train.jsonl`, `validation.jsonl` (with `validation`), `train.rejected.jsonl` (when any), `synth.jsonl`
    (with `synth_per_class`) and `report.json`.
    """
    label_list = list(labels)
    rows = list(pool)
    random.Random(seed).shuffle(rows)
    if test is None:
        rows.sort(key=lambda row: row[1] is None)  # stable: shuffled gold rows first, so held-out rows have gold
        cut = max(1, round(len(rows) * holdout)) if rows else 0
        test, rows = rows[:cut], rows[cut:]
    output_dir.mkdir(parents=True, exist_ok=True)
    if synth_per_class:
        made = synthesize(labels, synth_per_class, model=teacher, caller=teacher_endpoint.caller)
        write_examples(made.examples, output_dir / "synth.jsonl")
        rows += [(example.text, None) for example in made.examples]
    if not test or not rows:
        raise ValueError(f"need both training and held-out texts (have {len(rows)} and {len(test)})")
    run = label_texts([text for text, _ in rows], label_list, model=teacher, caller=teacher_endpoint.caller, seed=seed)
    labelled = run.labelled
    n_valid = round(len(labelled) * validation) if validation > 0 else 0
    train_path, valid_path = output_dir / "train.jsonl", output_dir / "validation.jsonl"
    written = write_chat_jsonl(labelled[n_valid:], train_path, system_prompt(label_list))
    if n_valid:
        write_chat_jsonl(labelled[:n_valid], valid_path, system_prompt(label_list))
    if run.rejected:
        write_rejected(run.items, output_dir / "train.rejected.jsonl")
    job = fine_tune_student(
        client,
        train_path,
        student_base,
        validation_file=valid_path if n_valid else None,
        hyperparameters=hyperparameters,
        wait=wait,
    )
    scores: list[ModelScore] = []
    test_texts = [text for text, _ in test]
    has_gold = all(gold is not None for _, gold in test)
    if has_gold:
        reference = [str(gold) for _, gold in test]
    else:  # no true labels: the teacher's own answers are the reference, so the student's score is agreement
        answers = label_texts(test_texts, label_list, model=teacher, caller=teacher_endpoint.caller, seed=seed)
        reference = [item.label or "(unparsed)" for item in answers.items]
    price_table = prices or {}
    requests = teacher_requests(test_texts, label_list, teacher, seed)
    scores.append(
        score_model(
            "teacher",
            teacher,
            teacher_endpoint,
            requests,
            reference,
            label_list,
            prices=price_table,
            cpu_hour_usd=cpu_hour_usd,
        )
    )
    if job.status == "succeeded":
        requests = student_requests(test_texts, label_list, job.fine_tuned_model)
        scores.append(
            score_model(
                "student",
                job.fine_tuned_model,
                student_endpoint,
                requests,
                reference,
                label_list,
                prices=price_table,
                cpu_hour_usd=cpu_hour_usd,
            )
        )
    result = DistillResult(
        scores=scores,
        reference="gold labels" if has_gold else "teacher labels (agreement)",
        train_examples=written,
        validation_examples=n_valid,
        train_rejected=len(run.rejected),
        test_examples=len(test),
        job_id=job.id,
        student_model=job.fine_tuned_model,
        job_status=job.status,
    )
    report = {**result.to_dict(), "teacher_requests": teacher_endpoint.caller.stats.to_dict()}
    (output_dir / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return result
