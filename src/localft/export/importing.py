"""Exported folders back into localft checkpoints, so `localft models import DIR` serves them.

A localft export (`localft.json` beside the weights) becomes the checkpoint it came from: a classifier's members
are written back from the exported weights (every encoder as a tuned one, so the folder needs no base model), a
causal export's `adapter/` goes on its base model (which must be on this machine), a legacy encoder's folder is
its model again. A sequence-classification folder made elsewhere (`id2label` in its config) is served as an
encoder classifier of its own.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

from localft.base_models import local_model_dir
from localft.classifier import Member
from localft.classifier.features import TfidfFeatures
from localft.classifier.head import LinearHead
from localft.classifier.model import ENCODER_FOLDER
from localft.errors import ModelError
from localft.export.causal import ADAPTER_FOLDER
from localft.export.manifest import MANIFEST_FILE, read_manifest
from localft.training.checkpoint import CheckpointMeta, write_meta


def checkpoint_from_export(folder: Path, dest: Path, cache_dir: Path | None = None) -> CheckpointMeta:
    """Write the checkpoint an exported `folder` stands for into `dest` (created) and return its description."""
    folder = Path(folder).expanduser()
    if not (folder / "config.json").is_file():
        raise ModelError(f"{folder} is not a Hugging Face model folder (no config.json).", param="folder")
    manifest = read_manifest(folder)
    dest.mkdir(parents=True)
    if manifest is None:
        meta = _foreign_classifier(folder, dest)
    elif manifest.kind == "classifier":
        meta = _pooled(folder, dest, manifest.checkpoint)
    elif manifest.kind == "encoder":
        meta = _legacy_encoder(folder, dest, manifest.checkpoint)
    elif manifest.kind == "causal_lm":
        meta = _causal(folder, dest, manifest.checkpoint, cache_dir)
    else:
        raise ModelError(
            f"{folder} is an ONNX export, which localft does not serve: import the Hugging Face export (format hf).",
            param="folder",
        )
    write_meta(dest, meta)
    return meta


def _pooled(folder: Path, dest: Path, meta: CheckpointMeta) -> CheckpointMeta:
    from localft.export.hf_pooled import LocalftPooledForSequenceClassification

    model: Any = LocalftPooledForSequenceClassification.from_pretrained(folder)
    members = []
    for i, described in enumerate(model.config.members):
        where = dest / described["folder"]
        where.mkdir(parents=True)
        head = model.heads[i]
        weight, bias = head.weight.detach().float().numpy(), head.bias.detach().float().numpy()
        LinearHead(weight, bias, meta.multi_label).save(where)
        if described["kind"] == "tfidf":
            shutil.copy2(folder / described["folder"] / TfidfFeatures.FILE, where / TfidfFeatures.FILE)
            member = Member("tfidf", described["folder"], weight=float(described.get("weight", 1.0)))
        else:
            model.encoders[str(i)].save_pretrained(where / ENCODER_FOLDER)
            _copy_tokenizer(folder / described["folder"], where / ENCODER_FOLDER)
            member = Member(
                "encoder",
                described["folder"],
                base_model=str(described.get("base_model", "")),
                tuned=True,
                max_length=int(described["max_length"]),
                weight=float(described.get("weight", 1.0)),
            )
        members.append(member.to_dict())
    return replace(meta, members=members)


def _legacy_encoder(folder: Path, dest: Path, meta: CheckpointMeta) -> CheckpointMeta:
    shutil.copytree(folder, dest / "model", ignore=shutil.ignore_patterns(MANIFEST_FILE))
    _copy_tokenizer(folder, dest / "tokenizer")
    return meta


def _causal(folder: Path, dest: Path, meta: CheckpointMeta, cache_dir: Path | None) -> CheckpointMeta:
    if not (folder / ADAPTER_FOLDER).is_dir():
        raise ModelError(f"{folder} has no {ADAPTER_FOLDER}/ folder to serve on its base model.", param="folder")
    try:
        local_model_dir(meta.base_model, cache_dir or dest)
    except ModelError as exc:
        raise ModelError(
            f"{folder} is a LoRA fine-tune of {meta.base_model}, which is not on this machine ({exc.message}). "
            f"Its merged weights still work as a base model: fine-tune with model={folder}.",
            param="folder",
        ) from exc
    shutil.copytree(folder / ADAPTER_FOLDER, dest / ADAPTER_FOLDER)
    _copy_tokenizer(folder, dest / "tokenizer")
    return meta


def _foreign_classifier(folder: Path, dest: Path) -> CheckpointMeta:
    """A sequence-classification folder not made by localft: its labels from `id2label`, served as it computes."""
    config: dict[str, Any] = json.loads((folder / "config.json").read_text())
    architectures = " ".join(config.get("architectures") or [])
    id2label = config.get("id2label") or {}
    if "ForSequenceClassification" not in architectures or not id2label or config.get("auto_map"):
        raise ModelError(
            f"{folder} is neither a localft export nor a standard sequence-classification model with labels "
            "(id2label). A causal LM folder serves as a base model as it is: use its path as the model.",
            param="folder",
        )
    labels = [str(id2label[k]) for k in sorted(id2label, key=int)]
    multi = config.get("problem_type") == "multi_label_classification"
    shutil.copytree(folder, dest / "model")
    _copy_tokenizer(folder, dest / "tokenizer")
    return CheckpointMeta(
        base_model=str(folder),
        family="encoder",
        task="classification",
        step=0,
        epoch=0,
        labels=labels,
        multi_label=multi,
        thresholds=[float(t) for t in config.get("thresholds", [])] if multi else [],
    )


def _copy_tokenizer(source: Path, dest: Path) -> None:
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(source).save_pretrained(dest)
