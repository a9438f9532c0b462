"""The result file of a job: one CSV row per metrics event, OpenAI's five columns first.

OpenAI's columns are `step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy`; ours add the
full-validation losses and the classification metrics measured on the whole validation file at epoch ends
(`full_valid_accuracy`, `full_valid_macro_f1`, ...). Empty cells mean "not measured at this step", as in OpenAI's.
A job resumed after a crash re-runs some steps; the last measurement of a step wins, so no step appears twice.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any

OPENAI_COLUMNS = ["step", "train_loss", "train_accuracy", "valid_loss", "valid_mean_token_accuracy"]
_SOURCES = {
    "train_accuracy": "train_mean_token_accuracy",
}
_FULL_VALID = ["full_valid_loss", "full_valid_mean_token_accuracy"]
_NOT_COLUMNS = {"step", "total_steps", "epoch", "train_mean_token_accuracy", *OPENAI_COLUMNS}


def result_csv(rows: Iterable[dict[str, Any]]) -> str:
    """Metrics event `data` dicts (oldest first) -> CSV text."""
    by_step: dict[int, dict[str, Any]] = {}
    for row in rows:
        by_step[int(row["step"])] = row
    extras = sorted({key for row in by_step.values() for key in row if key not in _NOT_COLUMNS} - set(_FULL_VALID))
    columns = [*OPENAI_COLUMNS, *_FULL_VALID, *extras]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for step in sorted(by_step):
        row = by_step[step]
        writer.writerow([_cell(row.get(_SOURCES.get(column, column))) for column in columns])
    return out.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.5f}"
    return str(value)
