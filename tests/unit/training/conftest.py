"""Helpers for training tests: a list-backed EventSink and small chat JSONL files built from the tiny corpus."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from localft.training.interfaces import CheckpointInfo, EventLevel, StepMetrics

SENTIMENT = {
    "positive": ["the flight was great thanks", "great flight thanks", "thanks the flight was great"],
    "negative": ["my bag was lost again", "lost my bag again", "the bag was lost"],
    "neutral": ["a neutral question about the gate", "a question about the gate", "question about the gate"],
}


class ListSink:
    """Records every event; `stop_after_checkpoints` / `stop_after_steps` simulate a cancel (or a crash) once that
    many checkpoints exist / steps were logged."""

    def __init__(self, stop_after_checkpoints: int | None = None, stop_after_steps: int | None = None) -> None:
        self.messages: list[str] = []
        self.metrics: list[StepMetrics] = []
        self.checkpoints: list[CheckpointInfo] = []
        self.stop_after_checkpoints = stop_after_checkpoints
        self.stop_after_steps = stop_after_steps

    def log(self, message: str, level: EventLevel = "info") -> None:
        self.messages.append(message)

    def log_metrics(self, metrics: StepMetrics) -> None:
        self.metrics.append(metrics)

    def on_checkpoint(self, checkpoint: CheckpointInfo) -> None:
        self.checkpoints.append(checkpoint)

    def should_stop(self) -> bool:
        if self.stop_after_steps is not None and len(self.metrics) >= self.stop_after_steps:
            return True
        return self.stop_after_checkpoints is not None and len(self.checkpoints) >= self.stop_after_checkpoints


MULTI_LABEL_ROWS = [
    ("my bag was lost again", "lost,bag"),
    ("the flight was great thanks", "none"),
    ("lost my bag", "lost,bag"),
    ("a question about the gate", "gate"),
    ("the bag at the gate", "bag,gate"),
    ("great flight", "none"),
]
"""Comments with several labels each (or none), for the multi-label tests."""


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def chat(text: str, answer: str, system: str | None = "Classify the sentiment.") -> dict[str, Any]:
    messages = [{"role": "system", "content": system}] if system else []
    return {"messages": [*messages, {"role": "user", "content": text}, {"role": "assistant", "content": answer}]}


def sentiment_records(repeat: int = 4, prefix: str = "") -> list[dict[str, Any]]:
    return [chat(t, prefix + label) for _ in range(repeat) for label, texts in SENTIMENT.items() for t in texts]


@pytest.fixture
def sentiment_files(tmp_path: Path) -> tuple[Path, Path]:
    train = write_jsonl(tmp_path / "train.jsonl", sentiment_records(4))
    valid = write_jsonl(tmp_path / "valid.jsonl", sentiment_records(1))
    return train, valid
