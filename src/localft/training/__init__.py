"""The training engine: fine-tune a base model on chat JSONL, reporting through an `EventSink`.

Import-light on purpose: `run_training` pulls in torch and transformers only when called.
"""

from __future__ import annotations

from localft.training.hparams import Hyperparameters
from localft.training.interfaces import CheckpointInfo, EventSink, StepMetrics, TrainResult, TrainSpec


def run_training(spec: TrainSpec, sink: EventSink) -> TrainResult:
    """Fine-tune `spec.base_model` on `spec.training_file` (see training/run.py)."""
    from localft.training.run import run_training as run

    return run(spec, sink)


__all__ = ["CheckpointInfo", "EventSink", "Hyperparameters", "StepMetrics", "TrainResult", "TrainSpec", "run_training"]
