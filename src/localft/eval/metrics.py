"""Classification metrics as pure functions over label strings (numpy only; tested against scikit-learn).

Answers outside the label set are never mapped to a label: they count as wrong, appear in the confusion matrix
under their own column (`OUT_OF_SET`) and are listed with their counts, so a model that "almost" answers is seen.
Divisions by zero (a label never predicted, or absent from the gold answers) give 0.0, as scikit-learn's
`zero_division=0` does.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

OUT_OF_SET = "(other)"
"""Confusion-matrix column for answers that are not one of the labels."""

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class ClassScores:
    """Precision, recall, F1 and support (gold count) of one label."""

    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class ClassificationMetrics:
    """Single-label scores over a fixed label set."""

    labels: list[str]
    n: int
    accuracy: float
    macro_f1: float
    weighted_f1: float
    macro_precision: float
    macro_recall: float
    per_class: dict[str, ClassScores]
    confusion: list[list[int]]
    """Rows: gold labels (in `labels` order); columns: the labels, then `OUT_OF_SET`."""
    out_of_set: dict[str, int]
    """Answers outside the label set -> how often each was given."""

    @property
    def n_out_of_set(self) -> int:
        return sum(self.out_of_set.values())

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["n_out_of_set"] = self.n_out_of_set
        data["confusion_columns"] = [*self.labels, OUT_OF_SET]
        return data


@dataclass(frozen=True)
class MultiLabelMetrics:
    """Multi-label scores: each example has a set of labels (possibly empty)."""

    labels: list[str]
    n: int
    micro_f1: float
    macro_f1: float
    weighted_f1: float
    micro_precision: float
    micro_recall: float
    hamming_loss: float
    exact_match: float
    """Share of examples whose predicted set equals the gold set (scikit-learn's subset accuracy)."""
    per_label: dict[str, ClassScores]
    out_of_set: dict[str, int]
    """Predicted labels outside the label set -> count (ignored in the per-label scores, counted here)."""

    @property
    def n_out_of_set(self) -> int:
        return sum(self.out_of_set.values())

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["n_out_of_set"] = self.n_out_of_set
        return data


def _ratio(num: FloatArray, den: FloatArray) -> FloatArray:
    """Element-wise num/den with 0 where den is 0."""
    out = np.zeros_like(num, dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _prf(tp: FloatArray, fp: FloatArray, fn: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, tp + fn)
    f1 = _ratio(2 * precision * recall, precision + recall)
    return precision, recall, f1


def _scores(
    labels: Sequence[str], p: FloatArray, r: FloatArray, f: FloatArray, s: FloatArray
) -> dict[str, ClassScores]:
    return {label: ClassScores(float(p[i]), float(r[i]), float(f[i]), int(s[i])) for i, label in enumerate(labels)}


def _weighted(values: FloatArray, support: FloatArray) -> float:
    total = float(support.sum())
    return float((values * support).sum() / total) if total else 0.0


def confusion_matrix(gold: Sequence[str], pred: Sequence[str], labels: Sequence[str]) -> npt.NDArray[np.int64]:
    """Counts[gold label, predicted label or OUT_OF_SET]; gold answers outside `labels` are an error."""
    index = {label: i for i, label in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels) + 1), dtype=np.int64)
    for g, p in zip(gold, pred, strict=True):
        if g not in index:
            raise ValueError(f"gold label {g!r} is not in the label set {list(labels)}")
        matrix[index[g], index.get(p, len(labels))] += 1
    return matrix


def classification_metrics(
    gold: Sequence[str], pred: Sequence[str], labels: Sequence[str] | None = None
) -> ClassificationMetrics:
    """Accuracy, macro/weighted F1, per-class P/R/F1 and the confusion matrix of single-label answers.

    `labels` defaults to the sorted gold labels; predictions outside it count as wrong and are listed.
    """
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold answers but {len(pred)} predictions")
    if not gold:
        raise ValueError("cannot score an empty test set")
    label_list = list(labels) if labels is not None else sorted(set(gold))
    matrix = confusion_matrix(gold, pred, label_list)
    inside = matrix[:, : len(label_list)].astype(np.float64)
    tp = np.diag(inside)
    support = matrix.sum(axis=1).astype(np.float64)
    fp = inside.sum(axis=0) - tp
    fn = support - tp
    precision, recall, f1 = _prf(tp, fp, fn)
    known = set(label_list)
    return ClassificationMetrics(
        labels=label_list,
        n=len(gold),
        accuracy=float(tp.sum() / len(gold)),
        macro_f1=float(f1.mean()),
        weighted_f1=_weighted(f1, support),
        macro_precision=float(precision.mean()),
        macro_recall=float(recall.mean()),
        per_class=_scores(label_list, precision, recall, f1, support),
        confusion=matrix.tolist(),
        out_of_set=dict(Counter(p for p in pred if p not in known).most_common()),
    )


def binarize(sets: Sequence[Sequence[str]], labels: Sequence[str]) -> npt.NDArray[np.int64]:
    """Indicator matrix [example, label]; names outside `labels` are ignored (count them separately)."""
    index = {label: i for i, label in enumerate(labels)}
    matrix = np.zeros((len(sets), len(labels)), dtype=np.int64)
    for row, names in enumerate(sets):
        for name in names:
            if name in index:
                matrix[row, index[name]] = 1
    return matrix


def multilabel_metrics(
    gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]], labels: Sequence[str] | None = None
) -> MultiLabelMetrics:
    """Per-label report, micro/macro/weighted F1, Hamming loss and exact-match ratio of label sets.

    An empty set means "no label" (e.g. a clean comment in Jigsaw). Predicted names outside `labels` are counted
    in `out_of_set`, are left out of the per-label scores, and make the example's exact match fail.
    """
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold answers but {len(pred)} predictions")
    if not gold:
        raise ValueError("cannot score an empty test set")
    label_list = list(labels) if labels is not None else sorted({name for names in gold for name in names})
    if not label_list:
        raise ValueError("multi-label scoring needs at least one label")
    known = set(label_list)
    y_true = binarize(gold, label_list).astype(np.float64)
    y_pred = binarize(pred, label_list).astype(np.float64)
    tp = (y_true * y_pred).sum(axis=0)
    fp = ((1 - y_true) * y_pred).sum(axis=0)
    fn = (y_true * (1 - y_pred)).sum(axis=0)
    support = y_true.sum(axis=0)
    precision, recall, f1 = _prf(tp, fp, fn)
    micro_p, micro_r, micro_f1 = _prf(np.array([tp.sum()]), np.array([fp.sum()]), np.array([fn.sum()]))
    extras = [[name for name in names if name not in known] for names in pred]
    exact = np.array(
        [(y_true[i] == y_pred[i]).all() and not extras[i] for i in range(len(gold))],
        dtype=np.float64,
    )
    return MultiLabelMetrics(
        labels=label_list,
        n=len(gold),
        micro_f1=float(micro_f1[0]),
        macro_f1=float(f1.mean()),
        weighted_f1=_weighted(f1, support),
        micro_precision=float(micro_p[0]),
        micro_recall=float(micro_r[0]),
        hamming_loss=float((y_true != y_pred).mean()),
        exact_match=float(exact.mean()),
        per_label=_scores(label_list, precision, recall, f1, support),
        out_of_set=dict(Counter(name for names in extras for name in names).most_common()),
    )


@dataclass(frozen=True)
class LatencyStats:
    """Per-request latency percentiles and overall throughput of one evaluation run."""

    n: int
    p50_s: float | None
    p95_s: float | None
    mean_s: float | None
    throughput_per_s: float | None
    """Answered requests per wall-clock second of the whole run (concurrency included)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def latency_stats(
    latencies: Sequence[float | None], wall_s: float | None, answered_in_wall: int | None = None
) -> LatencyStats:
    """Percentiles of the measured latencies (None entries skipped) and answers per second of `wall_s`.

    `answered_in_wall` is how many answers that wall time produced, when some came from elsewhere (a resume cache).
    """
    values = np.array([v for v in latencies if v is not None], dtype=np.float64)
    if values.size == 0:
        return LatencyStats(0, None, None, None, None)
    answered = values.size if answered_in_wall is None else answered_in_wall
    throughput = float(answered / wall_s) if wall_s and answered else None
    return LatencyStats(
        n=int(values.size),
        p50_s=float(np.percentile(values, 50)),
        p95_s=float(np.percentile(values, 95)),
        mean_s=float(values.mean()),
        throughput_per_s=throughput,
    )
