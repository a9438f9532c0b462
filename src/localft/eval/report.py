"""An evaluation report: scores, answers outside the label set, latency and cost, as JSON, Markdown and text.

`build_report` turns a test set and a model's run into an `EvalReport`; `save` writes the folder the CLI prints:

    report.json         everything below, machine-readable (also what `--save-to-server` uploads as purpose `evals`)
    report.md           the same for humans, with scikit-learn-style per-class table and the confusion matrix
    predictions.jsonl   one line per example: gold, answer, parsed prediction, label probabilities, latency
    confusion.png, per_class_f1.png   see localft.eval.plots
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localft.eval.metrics import (
    OUT_OF_SET,
    ClassificationMetrics,
    LatencyStats,
    MultiLabelMetrics,
    classification_metrics,
    latency_stats,
    multilabel_metrics,
)
from localft.eval.runner import RunResult
from localft.eval.testset import TestSet
from localft.text_table import text_table

REPORT_VERSION = 1


@dataclass(frozen=True)
class EvalReport:
    """One model scored on one test set."""

    model: str
    testset: str
    n: int
    task: str
    """`single_label` or `multi_label`."""
    metrics: ClassificationMetrics | MultiLabelMetrics
    latency: LatencyStats
    failures: int
    """Requests that failed after every retry (scored as wrong, listed as `(no answer)`)."""
    answer_format: dict[str, Any]
    wall_s: float
    answered_in_run: int
    """Answers obtained during `wall_s` (the rest came from the resume cache): the base of the per-1,000 cost."""
    cpu_s: float | None = None
    peak_rss_mb: float | None = None
    usage: dict[str, Any] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    """Per-example records (predictions.jsonl)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Context added by callers (kind of model, training time, ...)."""
    created: int = field(default_factory=lambda: int(time.time()))

    @property
    def headline(self) -> float:
        """Accuracy for single-label tasks, micro F1 for multi-label ones (what the tutorials quote)."""
        if isinstance(self.metrics, ClassificationMetrics):
            return self.metrics.accuracy
        return self.metrics.micro_f1

    @property
    def cpu_s_per_1k(self) -> float | None:
        if self.cpu_s is None or not self.answered_in_run:
            return None
        return self.cpu_s / self.answered_in_run * 1000

    def to_dict(self) -> dict[str, Any]:
        return {
            "object": "localft.eval_report",
            "version": REPORT_VERSION,
            "model": self.model,
            "testset": self.testset,
            "n": self.n,
            "task": self.task,
            "created": self.created,
            "headline": self.headline,
            "metrics": self.metrics.to_dict(),
            "latency": self.latency.to_dict(),
            "failures": self.failures,
            "answer_format": self.answer_format,
            "wall_s": self.wall_s,
            "answered_in_run": self.answered_in_run,
            "cpu_s": self.cpu_s,
            "cpu_s_per_1k": self.cpu_s_per_1k,
            "peak_rss_mb": self.peak_rss_mb,
            "usage": self.usage,
            "extra": self.extra,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)

    def summary_lines(self) -> list[str]:
        """The terminal view: headline scores, per-class table, answers outside the set, speed."""
        return _render(self, markdown=False)

    def to_markdown(self) -> str:
        return "\n".join(_render(self, markdown=True)) + "\n"

    def save(self, folder: Path, *, plots: bool = True) -> list[Path]:
        """Write report.json, report.md, predictions.jsonl (and PNG plots); returns the paths written."""
        folder.mkdir(parents=True, exist_ok=True)
        written = [folder / "report.json", folder / "report.md", folder / "predictions.jsonl"]
        written[0].write_text(self.to_json() + "\n", encoding="utf-8")
        written[1].write_text(self.to_markdown(), encoding="utf-8")
        with written[2].open("w", encoding="utf-8") as fh:
            for row in self.rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        if plots:
            from localft.eval.plots import plot_report

            written.extend(plot_report(self, folder))
        return written


def build_report(testset: TestSet, run: RunResult, *, extra: dict[str, Any] | None = None) -> EvalReport:
    """Score a run: parse every answer with the test set's answer format and compute the metrics."""
    fmt = testset.answer_format
    labels = testset.labels
    rows: list[dict[str, Any]] = []
    metrics: ClassificationMetrics | MultiLabelMetrics
    if fmt.multi_label:
        gold_sets = testset.gold_multi()
        pred_sets = [fmt.parse_multi(p.answer, labels) if p.error is None else [p.answer] for p in run.predictions]
        metrics = multilabel_metrics(gold_sets, pred_sets, labels)
        golds: list[Any] = gold_sets
        preds: list[Any] = pred_sets
    else:
        gold = testset.gold_single()
        pred = [fmt.parse_single(p.answer, labels) if p.error is None else p.answer for p in run.predictions]
        metrics = classification_metrics(gold, pred, labels)
        golds, preds = gold, pred
    # Duplicate examples are sent once, so count answered requests, not examples.
    answered = run.stats.requests - run.stats.cached - run.stats.failures
    for example, prediction, g, p in zip(testset.examples, run.predictions, golds, preds, strict=True):
        rows.append(
            {
                "line": example.line,
                "gold": g,
                "prediction": p,
                "correct": g == p,
                "answer": prediction.answer,
                "label_probs": prediction.label_probs,
                "latency_s": prediction.latency_s,
                "error": prediction.error,
            }
        )
    return EvalReport(
        model=run.model,
        testset=testset.name,
        n=len(testset.examples),
        task="multi_label" if fmt.multi_label else "single_label",
        metrics=metrics,
        latency=latency_stats([p.latency_s for p in run.predictions], run.wall_s, answered),
        failures=sum(p.error is not None for p in run.predictions),
        answer_format=fmt.to_dict(),
        wall_s=run.wall_s,
        answered_in_run=answered,
        cpu_s=run.cpu_s,
        # A run answered entirely from the resume cache measured no model: its memory would mislead.
        peak_rss_mb=run.peak_rss_mb if answered else None,
        usage=run.stats.to_dict(),
        rows=rows,
        extra=dict(extra or {}),
    )


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _table(header: list[str], rows: list[list[str]], markdown: bool) -> list[str]:
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        return lines + ["| " + " | ".join(r) + " |" for r in rows]
    return text_table(header, rows, rule=True).split("\n")


def _render(report: EvalReport, markdown: bool) -> list[str]:
    m = report.metrics
    title = f"Evaluation of {report.model} on {report.testset} ({report.n} examples, {report.task.replace('_', '-')})"
    lines = [f"# {title}" if markdown else title, ""]
    if isinstance(m, ClassificationMetrics):
        lines.append(
            f"accuracy {m.accuracy:.4f}   macro F1 {m.macro_f1:.4f}   weighted F1 {m.weighted_f1:.4f}   "
            f"out of label set {m.n_out_of_set}/{m.n}   failed requests {report.failures}"
        )
        scores = m.per_class
    else:
        lines.append(
            f"micro F1 {m.micro_f1:.4f}   macro F1 {m.macro_f1:.4f}   weighted F1 {m.weighted_f1:.4f}   "
            f"Hamming loss {m.hamming_loss:.4f}   exact match {m.exact_match:.4f}   "
            f"out-of-set labels {m.n_out_of_set}   failed requests {report.failures}"
        )
        scores = m.per_label
    lines.append("")
    rows = [[label, _fmt(s.precision), _fmt(s.recall), _fmt(s.f1), str(s.support)] for label, s in scores.items()]
    lines += _table(["label", "precision", "recall", "f1", "support"], rows, markdown)
    if m.out_of_set:
        lines += ["", "Answers outside the label set (counted as wrong):"]
        shown = list(m.out_of_set.items())[:15]
        lines += _table(["answer", "count"], [[repr(a)[:60], str(c)] for a, c in shown], markdown)
        if len(m.out_of_set) > len(shown):
            lines.append(f"... and {len(m.out_of_set) - len(shown)} more distinct answers")
    if isinstance(m, ClassificationMetrics) and len(m.labels) <= 20:
        lines += ["", "Confusion matrix (rows: gold, columns: answer):"]
        header = ["gold \\ answer", *m.labels, OUT_OF_SET]
        lines += _table(header, [[g, *map(str, r)] for g, r in zip(m.labels, m.confusion, strict=True)], markdown)
    lat = report.latency
    lines += [
        "",
        f"latency p50 {_fmt(lat.p50_s)} s   p95 {_fmt(lat.p95_s)} s   throughput {_fmt(lat.throughput_per_s, 2)}/s   "
        f"wall {report.wall_s:.1f} s"
        + (f"   CPU {report.cpu_s_per_1k:.1f} s per 1,000" if report.cpu_s_per_1k is not None else "")
        + (f"   peak RSS {report.peak_rss_mb:.0f} MB" if report.peak_rss_mb is not None else ""),
    ]
    if report.usage:
        lines.append(
            f"requests {report.usage.get('requests')} ({report.usage.get('cached')} from cache), "
            f"retries {report.usage.get('retries')}, tokens {report.usage.get('total_tokens')}"
        )
    return lines
