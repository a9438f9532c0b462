"""PNG of fine-tuning jobs' training curves (matplotlib, headless), several jobs overlaid: training loss per step
(smoothed, over the faint measured line) and the validation metrics of each epoch end.

The input is the `data` of each job's metrics events, as `/v1/fine_tuning/jobs/{id}/events` returns them, so the
CLI's `localft jobs plot` and `localft train` draw what the dashboard's compare page draws.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_SMOOTHING = 0.6
# The headline validation metric, in order of preference (single-label runs report accuracy, multi-label micro F1).
_HEADLINES = ("full_valid_accuracy", "full_valid_micro_f1", "full_valid_macro_f1")
_COLOURS = ("#2563eb", "#ea580c", "#16a34a", "#9333ea", "#dc2626", "#0891b2", "#ca8a04", "#db2777")


@dataclass(frozen=True)
class RunCurves:
    """One job's metrics, one row per step in step order (the latest report of a step wins)."""

    label: str
    rows: list[dict[str, Any]]

    @classmethod
    def from_events(cls, label: str, events: Iterable[Mapping[str, Any] | None]) -> RunCurves:
        """`events` are metrics events' `data`, in any order; anything without a step is skipped."""
        by_step: dict[int, dict[str, Any]] = {}
        for data in events:
            if data and isinstance(data.get("step"), int):
                by_step.setdefault(data["step"], {}).update(data)
        return cls(label, [by_step[s] for s in sorted(by_step)])

    def points(self, key: str) -> tuple[list[int], list[float]]:
        chosen = [(r["step"], float(r[key])) for r in self.rows if isinstance(r.get(key), int | float)]
        return [s for s, _ in chosen], [v for _, v in chosen]

    def headline(self) -> str | None:
        """The validation metric this run reports at epoch ends, or None (no validation file)."""
        return next((k for k in _HEADLINES if self.points(k)[0]), None)


def smooth(values: Sequence[float], weight: float) -> list[float]:
    """Exponential moving average, debiased (as TensorBoard's slider) so early points are not pulled to zero."""
    if weight <= 0:
        return list(values)
    average, out = 0.0, []
    for i, value in enumerate(values):
        average = average * weight + (1 - weight) * value
        out.append(average / (1 - weight ** (i + 1)))
    return out


def plot_curves(
    runs: Sequence[RunCurves], path: Path, *, smoothing: float = DEFAULT_SMOOTHING, title: str = ""
) -> Path:
    """Training loss (left) and validation metrics (right) of `runs`, one colour per run; returns `path`.

    Epoch-end metrics are drawn as measured: they are a few exact points, and smoothing would understate them.
    """
    # Imported here, not at the top: the CLI imports this module, and matplotlib would slow every command's start.
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and CI; must precede pyplot's import
    import matplotlib.pyplot as plt

    fig, (loss_ax, metric_ax) = plt.subplots(1, 2, figsize=(11, 4.2))
    for i, run in enumerate(runs):
        colour = _COLOURS[i % len(_COLOURS)]
        steps, losses = run.points("train_loss")
        if steps:
            if smoothing > 0:
                loss_ax.plot(steps, losses, color=colour, alpha=0.25, linewidth=1)
            loss_ax.plot(steps, smooth(losses, smoothing), color=colour, linewidth=1.8, label=run.label)
        valid_steps, valid_losses = run.points("full_valid_loss")
        if valid_steps:
            loss_ax.plot(valid_steps, valid_losses, color=colour, linestyle="--", marker="o", markersize=4)
        headline = run.headline()
        if headline:
            x, y = run.points(headline)
            name = headline.removeprefix("full_valid_").replace("_", " ")
            metric_ax.plot(x, y, color=colour, marker="o", markersize=5, label=f"{run.label}: {name}")
        x, y = run.points("full_valid_macro_f1")
        if x and headline != "full_valid_macro_f1":
            metric_ax.plot(x, y, color=colour, linestyle=":", marker="s", markersize=3, label=f"{run.label}: macro f1")
    loss_ax.set_title(f"Training loss (smoothing {smoothing:g}; dashed: full validation loss)", fontsize=9)
    loss_ax.set_xlabel("step")
    if any(run.points("train_loss")[0] for run in runs):
        loss_ax.legend(fontsize=7)
    metric_ax.set_title("Validation metrics at epoch ends", fontsize=9)
    metric_ax.set_xlabel("step")
    if any(run.headline() for run in runs):
        metric_ax.set_ylim(0, 1.02)
        metric_ax.legend(fontsize=7)
    else:
        metric_ax.text(0.5, 0.5, "no validation file", ha="center", va="center", transform=metric_ax.transAxes)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
