"""Training curves of jobs as a PNG: rows from metrics events, smoothing, and what each panel draws."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pytest

from localft.eval.curves import RunCurves, plot_curves, smooth


def events(speed: float, with_validation: bool = True) -> list[dict[str, Any] | None]:
    """Metrics events' data, newest first as the API lists them, with an epoch end every 4 steps."""
    data: list[dict[str, Any] | None] = []
    for step in range(1, 9):
        row: dict[str, Any] = {"step": step, "total_steps": 8, "train_loss": 2.0 / (1 + speed * step)}
        if with_validation and step % 4 == 0:
            row |= {"epoch": step // 4, "full_valid_loss": 1.0 / step, "full_valid_accuracy": 0.4 + step / 20}
            row["full_valid_macro_f1"] = row["full_valid_accuracy"] - 0.05
        data.append(row)
    data.append(None)  # a message event has no data
    return data[::-1]


def test_rows_are_in_step_order_and_merge_reports_of_one_step() -> None:
    run = RunCurves.from_events(
        "a", [{"step": 2, "train_loss": 0.5}, {"step": 1, "train_loss": 1.0}, {"step": 2, "x": 1}]
    )
    assert run.rows == [{"step": 1, "train_loss": 1.0}, {"step": 2, "train_loss": 0.5, "x": 1}]
    assert run.points("train_loss") == ([1, 2], [1.0, 0.5])
    assert run.headline() is None
    assert RunCurves.from_events("b", events(1.0)).headline() == "full_valid_accuracy"


def test_smoothing_is_debiased_and_zero_keeps_the_values() -> None:
    assert smooth([1.0, 3.0], 0) == [1.0, 3.0]
    assert smooth([2.0, 2.0, 2.0], 0.9) == pytest.approx([2.0, 2.0, 2.0])  # no pull towards zero
    assert smooth([0.0, 1.0], 0.5) == pytest.approx([0.0, 2 / 3])


def test_plot_overlays_each_run_on_both_panels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    drawn: list[tuple[list[str], list[str]]] = []
    save = plt.Figure.savefig

    def capture(fig: plt.Figure, path: Path, **kwargs: Any) -> None:
        loss, metric = fig.axes
        legend = [t.get_text() for t in loss.get_legend().get_texts()]
        metric_legend = [t.get_text() for t in metric.get_legend().get_texts()]
        drawn.append((legend, metric_legend))
        save(fig, path, **kwargs)

    monkeypatch.setattr(plt.Figure, "savefig", capture)
    runs = [RunCurves.from_events("fast", events(2.0)), RunCurves.from_events("slow", events(0.5))]
    path = plot_curves(runs, tmp_path / "curves.png", smoothing=0.5)
    assert path.read_bytes()[:4] == b"\x89PNG"
    assert drawn == [
        (["fast", "slow"], ["fast: accuracy", "fast: macro f1", "slow: accuracy", "slow: macro f1"]),
    ]


def test_plot_without_validation_says_so(tmp_path: Path) -> None:
    path = plot_curves([RunCurves.from_events("only", events(1.0, with_validation=False))], tmp_path / "c.png")
    assert path.stat().st_size > 0
