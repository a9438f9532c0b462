"""Self-describing checkpoint folders: everything needed to serve or resume a fine-tune, nothing else required.

    step-000120/
      localft_checkpoint.json    CheckpointMeta: base model, family, task, labels, step, hparams, metrics
      adapter/                   causal_lm: the LoRA adapter (peft save_pretrained)
      member-0/ ...              classifier: the members of a pooled classifier (localft.classifier.model)
      model/                     encoder (before pooled classifiers): a sequence-classification model
      tokenizer/                 the tokenizer used in training (so serving never re-resolves it)
      trainer_state.pt           optimizer, scheduler, RNG states, data position (resume only)

A checkpoint is written to `<name>.partial/` and renamed into place, so a crash never leaves a half-written one.

Long epochs also get progress saves, `progress-000057/`: the same layout, written mid-epoch every few minutes so a
crash costs minutes of training rather than an epoch. They are not checkpoints: never reported or served, only
resumed from, and each one replaces the one before (the next epoch checkpoint removes the last).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from localft.errors import ModelError

META_FILE = "localft_checkpoint.json"
STATE_FILE = "trainer_state.pt"
"""The training loop's own state (optimizer, schedule, RNG, position): resuming needs it, serving never does."""
FORMAT_VERSION = 1

Family = Literal["causal_lm", "encoder", "classifier"]
"""What a checkpoint holds: a LoRA adapter, a sequence-classification encoder (written before localft's encoders
became pooled classifiers, still served), or a pooled classifier."""
Task = Literal["classification", "generation"]


@dataclass(frozen=True)
class CheckpointMeta:
    """The description stored with every checkpoint."""

    base_model: str
    """Catalog name or local folder the weights were fine-tuned from."""
    family: Family
    task: Task
    step: int
    epoch: int
    labels: list[str] = field(default_factory=list)
    """The label set, in a fixed order (empty for generation)."""
    multi_label: bool = False
    label_separator: str = ","
    """How multi-label answers join labels (`toxic,insult`)."""
    none_label: str | None = None
    """The answer meaning "no label" in multi-label data (e.g. `none`)."""
    assistant_prefix: str = ""
    """Text every training answer started with (e.g. `Case Outcome: `), kept in front of predicted labels."""
    thresholds: list[float] = field(default_factory=list)
    """Per-label decision thresholds (multi-label encoders)."""
    max_length: int = 512
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    chat_template: Literal["model", "plain"] = "model"
    members: list[dict[str, Any]] = field(default_factory=list)
    """A pooled classifier's members (`localft.classifier.Member.to_dict`)."""
    prompt_shape: dict[str, Any] | None = None
    """What the training prompts shared (`base_models.prompt_shape.PromptShape`): requests are read back to it."""
    selection: dict[str, Any] | None = None
    """For `model: "auto"` jobs: the candidates scored, their scores and the choice (`training.selection`)."""
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def write_meta(folder: Path, meta: CheckpointMeta) -> None:
    (folder / META_FILE).write_text(json.dumps(meta.to_dict(), indent=2) + "\n")


def read_checkpoint(folder: Path) -> CheckpointMeta:
    """Read a checkpoint's description; a folder without one is not a checkpoint."""
    path = Path(folder) / META_FILE
    if not path.is_file():
        raise ModelError(f"{folder} is not a localft checkpoint (no {META_FILE}).")
    raw = json.loads(path.read_text())
    if raw.get("format_version", 0) > FORMAT_VERSION:
        raise ModelError(f"{folder} was written by a newer localft (format {raw['format_version']}).")
    known = set(CheckpointMeta.__dataclass_fields__)
    return CheckpointMeta(**{k: v for k, v in raw.items() if k in known})


PROGRESS_PREFIX = "progress-"


def progress_dir(output_dir: Path, step: int) -> Path:
    return output_dir / f"{PROGRESS_PREFIX}{step:06d}"


def latest_progress(output_dir: Path) -> tuple[int, Path] | None:
    """The newest complete progress save of a run's output folder: (step, folder), or None."""
    saves = [
        p
        for p in output_dir.glob(f"{PROGRESS_PREFIX}*")
        if p.is_dir() and not p.name.endswith(".partial") and (p / META_FILE).is_file()
    ]
    if not saves:
        return None
    newest = max(saves, key=lambda p: p.name)
    return read_checkpoint(newest).step, newest


def remove_progress(output_dir: Path, keep: Path | None = None) -> None:
    """Delete the progress saves of a run (all but `keep`)."""
    for folder in output_dir.glob(f"{PROGRESS_PREFIX}*"):
        if folder != keep:
            shutil.rmtree(folder, ignore_errors=True)


def partial_dir(final: Path) -> Path:
    """Where a checkpoint is assembled before `commit` renames it to `final`."""
    partial = final.with_name(final.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    return partial


def commit(partial: Path, final: Path) -> Path:
    """Atomically publish an assembled checkpoint folder."""
    shutil.rmtree(final, ignore_errors=True)
    partial.rename(final)
    return final
