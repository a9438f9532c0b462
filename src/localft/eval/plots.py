"""PNG plots of evaluation reports (matplotlib, headless): confusion matrix, per-class F1, model comparison."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI; must precede pyplot's import

import matplotlib.pyplot as plt
import numpy as np

from localft.eval.metrics import OUT_OF_SET, ClassificationMetrics

if TYPE_CHECKING:
    from localft.eval.report import EvalReport

MAX_CONFUSION_LABELS = 40
"""Beyond this many labels a confusion matrix is unreadable; Banking77/CLINC150 get the per-class plot only."""


def _short(label: str, width: int = 24) -> str:
    return label if len(label) <= width else label[: width - 1] + "…"


def wrap_name(name: str, width: int = 24) -> str:
    """A model name on lines of at most `width` characters, broken after `:`, `/`, `-` or `_` where it can be.

    Model names are never cut: two fine-tunes of one base share their first 30-odd characters
    (`ft:smollm2-135m-instruct:localft:…`) and differ only at the end.
    """
    lines: list[str] = []
    line = ""
    for part in re.split(r"(?<=[:/_-])", name):
        while len(part) > width:  # a part with no break in it (a long hash, say) is split where it must be
            room = width - len(line)
            lines.append(line + part[:room])
            line, part = "", part[room:]
        if len(line) + len(part) > width:
            lines.append(line)
            line = ""
        line += part
    lines.append(line)
    return "\n".join(piece for piece in lines if piece)


def plot_confusion(metrics: ClassificationMetrics, path: Path, title: str) -> Path:
    """Row-normalised confusion matrix with counts; the last column holds answers outside the label set."""
    counts = np.array(metrics.confusion, dtype=np.float64)
    if counts[:, -1].sum() == 0:
        counts = counts[:, :-1]  # no out-of-set answers: keep the matrix square
    columns = [*metrics.labels, OUT_OF_SET][: counts.shape[1]]
    rows = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    size = max(4.0, 0.5 * len(columns) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(columns)), [_short(c) for c in columns], rotation=45, ha="right")
    ax.set_yticks(range(len(metrics.labels)), [_short(c) for c in metrics.labels])
    ax.set_xlabel("answer")
    ax.set_ylabel("gold")
    if len(columns) <= 15:
        for i in range(counts.shape[0]):
            for j in range(counts.shape[1]):
                colour = "white" if share[i, j] > 0.5 else "black"
                ax.text(j, i, str(int(counts[i, j])), ha="center", va="center", color=colour, fontsize=8)
    fig.colorbar(image, ax=ax, fraction=0.046, label="share of gold row")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_per_class_f1(labels: Sequence[str], f1: Sequence[float], path: Path, title: str) -> Path:
    """Horizontal bars of F1 per class, worst at the top so weak classes stand out."""
    order = np.argsort(f1)[::-1]
    fig, ax = plt.subplots(figsize=(7, max(2.5, 0.22 * len(labels) + 1)))
    ax.barh([_short(labels[i], 40) for i in order], [f1[i] for i in order], color="#4C72B0")
    ax.set_xlim(0, 1)
    ax.set_xlabel("F1")
    ax.tick_params(axis="y", labelsize=7 if len(labels) > 30 else 9)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_report(report: EvalReport, folder: Path) -> list[Path]:
    """The report's PNGs: confusion.png (single-label, up to MAX_CONFUSION_LABELS labels) and per_class_f1.png."""
    m = report.metrics
    written = []
    title = f"{report.model} on {report.testset}"
    if isinstance(m, ClassificationMetrics):
        if len(m.labels) <= MAX_CONFUSION_LABELS:
            written.append(plot_confusion(m, folder / "confusion.png", title))
        scores = m.per_class
    else:
        scores = m.per_label
    names = list(scores)
    written.append(plot_per_class_f1(names, [scores[n].f1 for n in names], folder / "per_class_f1.png", title))
    return written


def plot_comparison(names: Sequence[str], values: Sequence[float], metric: str, path: Path, title: str) -> Path:
    """One bar per model for the headline metric, value printed on each bar, full model names under the bars."""
    labels = [wrap_name(n) for n in names]
    label_lines = max((label.count("\n") + 1 for label in labels), default=1)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.8 * len(names) + 2), 3.6 + 0.16 * label_lines))
    bars = ax.bar(range(len(names)), values, color="#55A868")
    ax.set_xticks(range(len(names)), labels, fontsize=7)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel(metric)
    for bar, value in zip(bars, values, strict=True):
        ax.text(bar.get_x() + bar.get_width() / 2, value + 0.01, f"{value:.3f}", ha="center", fontsize=8)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
