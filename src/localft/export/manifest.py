"""`localft.json`, written into every export: what the folder holds and how localft trained it, so a reader knows
what input the model expects and `localft models import` can serve the folder with the same answers."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from localft.errors import ModelError
from localft.training.checkpoint import CheckpointMeta

MANIFEST_FILE = "localft.json"
ExportKind = Literal["causal_lm", "classifier", "encoder", "onnx"]
INPUTS: dict[ExportKind, str] = {
    "causal_lm": "the conversation in the tokenizer's chat template, the system prompt and user wrapper as trained "
    "(`prompt_shape`); the answer is the label text",
    "classifier": "the user's text alone: no system prompt, no instruction around it",
    "encoder": "the user's text alone: no system prompt, no instruction around it",
    "onnx": "the user's text alone, tokenized by the folder's tokenizer (cut at `max_length`)",
}


@dataclass(frozen=True)
class Manifest:
    """An export's description: its kind, the checkpoint's own description, and the input it expects."""

    kind: ExportKind
    checkpoint: CheckpointMeta
    input: str

    @property
    def labels(self) -> list[str]:
        return list(self.checkpoint.labels)


def write_manifest(out: Path, meta: CheckpointMeta, kind: ExportKind) -> None:
    body = {"kind": kind, "input": INPUTS[kind], "checkpoint": meta.to_dict()}
    (out / MANIFEST_FILE).write_text(json.dumps(body, indent=2) + "\n")


def read_manifest(folder: Path) -> Manifest | None:
    """The folder's manifest; None for a folder exported by something else."""
    path = folder / MANIFEST_FILE
    if not path.is_file():
        return None
    try:
        raw: dict[str, Any] = json.loads(path.read_text())
        known = set(CheckpointMeta.__dataclass_fields__)
        meta = CheckpointMeta(**{k: v for k, v in raw["checkpoint"].items() if k in known})
        return Manifest(kind=raw["kind"], checkpoint=meta, input=str(raw.get("input", "")))
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{path} is not a localft export manifest: {exc}") from exc
