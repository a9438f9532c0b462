"""What the training engine needs from its caller, and what it hands back.

Training code reports only through an `EventSink`; the job worker supplies one backed by the job store, tests
supply a list-backed one, the CLI a progress bar. Nothing in `localft.training` imports HTTP or the database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from localft.settings import CompilePolicy
from localft.training.hparams import Hyperparameters

EventLevel = Literal["info", "warn", "error"]


@dataclass(frozen=True)
class StepMetrics:
    """One metrics event, with OpenAI's key names (see `as_event_data`)."""

    step: int
    total_steps: int
    train_loss: float
    train_mean_token_accuracy: float
    valid_loss: float | None = None
    valid_mean_token_accuracy: float | None = None
    full_valid_loss: float | None = None
    full_valid_mean_token_accuracy: float | None = None
    epoch: int = 1
    trained_tokens: int = 0
    classification: dict[str, float] = field(default_factory=dict)
    """Real classification metrics of the full validation set at epoch ends: accuracy, macro_f1, ..."""

    def as_event_data(self) -> dict[str, Any]:
        """The `data` of a `type: "metrics"` event: OpenAI's seven keys plus `total_steps`, then extras."""
        data: dict[str, Any] = {
            "step": self.step,
            "train_loss": self.train_loss,
            "train_mean_token_accuracy": self.train_mean_token_accuracy,
            "valid_loss": self.valid_loss,
            "valid_mean_token_accuracy": self.valid_mean_token_accuracy,
            "full_valid_loss": self.full_valid_loss,
            "full_valid_mean_token_accuracy": self.full_valid_mean_token_accuracy,
            "total_steps": self.total_steps,
            "epoch": self.epoch,
        }
        data.update({f"full_valid_{k}": v for k, v in self.classification.items()})
        return data


@dataclass(frozen=True)
class CheckpointInfo:
    """A checkpoint folder the trainer has finished writing (self-describing; see training/checkpoint.py)."""

    step: int
    epoch: int
    path: Path
    metrics: StepMetrics


class EventSink(Protocol):
    """Where training reports. Implementations must be cheap: they are called between steps."""

    def log(self, message: str, level: EventLevel = "info") -> None:
        """A human-readable message event."""

    def log_metrics(self, metrics: StepMetrics) -> None:
        """A metrics event (each logged step, and each epoch end with full validation)."""

    def on_checkpoint(self, checkpoint: CheckpointInfo) -> None:
        """A checkpoint was written and may be recorded/served."""

    def should_stop(self) -> bool:
        """True when the job was cancelled or paused; training stops at the next step boundary."""


@dataclass(frozen=True)
class TrainSpec:
    """Everything one training run needs. Paths are local files; `base_model` is a catalog name or a folder."""

    base_model: str
    training_file: Path
    output_dir: Path
    """Checkpoints go to `output_dir/step-{N:06d}/`."""
    validation_file: Path | None = None
    hyperparameters: Hyperparameters = field(default_factory=Hyperparameters)
    seed: int = 0
    resume_from: Path | None = None
    """A checkpoint folder of this same run to continue from (after a crash or a pause)."""
    device: str = "auto"
    cache_dir: Path | None = None
    """Where converted base-model weights are cached (settings.cache_dir)."""
    max_checkpoints: int = 3
    """Only the newest N epoch checkpoints are kept on disk (OpenAI keeps the last 3)."""
    save_every_s: float | None = 600.0
    """Mid-epoch progress saves (`output_dir/progress-{N:06d}/`) after this many seconds of training, so a crash
    loses minutes, not an epoch; resume from them like a checkpoint. None: epoch checkpoints only."""
    task: Literal["auto", "classification", "generation"] = "auto"
    """`auto` detects a classifier from the answers (training/task.py); the others force a task."""
    class_weights: bool = False
    """Encoders: weight classes by inverse frequency to counter imbalance."""
    compile_layers: CompilePolicy = "auto"
    """Run the model's layers compiled in training passes (`training.compilation`): `auto` where the run is long
    enough to repay compiling."""
    devices: int = 1
    """Data-parallel processes where the job's `hyperparameters.devices` is auto (the worker's `LOCALFT_DEVICES`;
    0 is every GPU); more than one trains in processes of their own (`training.distributed`)."""


@dataclass(frozen=True)
class TrainResult:
    """What a finished run produced."""

    final_checkpoint: Path
    trained_tokens: int
    steps: int
    hyperparameters: dict[str, Any]
    """Resolved values (no "auto" left): n_epochs, batch_size, learning_rate_multiplier, ..."""
    metrics: StepMetrics | None = None
