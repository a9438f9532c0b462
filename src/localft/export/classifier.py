"""Classifier checkpoints as Hugging Face sequence-classification folders.

A pooled classifier (family `classifier`: one member or an ensemble, encoders and TF-IDF) becomes a folder whose
`modeling_localft.py` (`localft.export.hf_pooled`) does what localft does: mean pooling, the linear heads, the
average. A legacy `encoder` checkpoint already is a standard `AutoModelForSequenceClassification` (CLS pooler), so it
is copied with its labels. Both load with `transformers.pipeline("text-classification", model=DIR, ...)`.
"""

from __future__ import annotations

import inspect
import json
import shutil
from pathlib import Path
from typing import Any

from localft.base_models import local_model_dir
from localft.classifier import Member
from localft.classifier.features import TfidfFeatures
from localft.classifier.head import LinearHead
from localft.classifier.model import encoder_source
from localft.errors import ModelError
from localft.export import hf_pooled
from localft.export.manifest import write_manifest
from localft.training.checkpoint import CheckpointMeta

MODELING_FILE = "modeling_localft.py"
MODELING_MODULE = MODELING_FILE.removesuffix(".py")


def export_pooled(checkpoint: Path, meta: CheckpointMeta, out: Path, cache_dir: Path) -> None:
    """Write a pooled classifier as a folder `pipeline(..., trust_remote_code=True)` loads."""
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModel, AutoTokenizer

    members = [Member.from_dict(raw) for raw in meta.members]
    described: list[dict[str, Any]] = []
    tensors: dict[str, torch.Tensor] = {}
    top_tokenizer: Path | None = None
    for i, member in enumerate(members):
        where = out / member.folder
        where.mkdir(parents=True, exist_ok=True)
        head = LinearHead.load(checkpoint / member.folder)
        tensors[f"heads.{i}.weight"] = torch.from_numpy(head.weight.astype("float32").copy())
        tensors[f"heads.{i}.bias"] = torch.from_numpy(head.bias.astype("float32").copy())
        entry: dict[str, Any] = {"kind": member.kind, "folder": member.folder, "weight": member.weight}
        if member.kind == "tfidf":
            shutil.copy2(checkpoint / member.folder / TfidfFeatures.FILE, where / TfidfFeatures.FILE)
            entry["vocab_size"] = int(head.weight.shape[1])
        else:
            base = local_model_dir(member.base_model, cache_dir) if not member.tuned else checkpoint
            source = encoder_source(checkpoint, member, base)
            body = AutoModel.from_pretrained(source, dtype=torch.float32)
            for name, tensor in body.state_dict().items():
                tensors[f"encoders.{i}.{name}"] = tensor.detach().contiguous().clone()
            AutoTokenizer.from_pretrained(source).save_pretrained(where)
            entry |= {
                "max_length": member.max_length,
                "encoder": body.config.to_dict(),
                "base_model": member.base_model,
            }
            top_tokenizer = top_tokenizer or where
        described.append(entry)
    save_file(_unshared(tensors), str(out / "model.safetensors"), metadata={"format": "pt"})
    if top_tokenizer is not None:  # for `AutoTokenizer.from_pretrained(DIR)` and tools that look at the top
        for item in top_tokenizer.iterdir():
            shutil.copy2(item, out / item.name)
    (out / MODELING_FILE).write_text(inspect.getsource(hf_pooled))
    config = {
        "architectures": ["LocalftPooledForSequenceClassification"],
        "model_type": "localft_pooled",
        "auto_map": {
            "AutoConfig": f"{MODELING_MODULE}.LocalftPooledConfig",
            "AutoModelForSequenceClassification": f"{MODELING_MODULE}.LocalftPooledForSequenceClassification",
        },
        "custom_pipelines": {
            "text-classification": {
                "impl": f"{MODELING_MODULE}.LocalftTextClassificationPipeline",
                "pt": ["AutoModelForSequenceClassification"],
                "type": "text",
            }
        },
        "members": described,
        **_label_fields(meta),
    }
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    write_manifest(out, meta, "classifier")


def export_legacy_encoder(checkpoint: Path, meta: CheckpointMeta, out: Path) -> None:
    """Copy a legacy encoder checkpoint's sequence-classification model and tokenizer, with its labels."""
    model_dir = checkpoint / "model"
    if not model_dir.is_dir():
        raise ModelError(f"Checkpoint {checkpoint} has no model/ folder.")
    shutil.copytree(model_dir, out, dirs_exist_ok=True)
    tokenizer_dir = checkpoint / "tokenizer"
    if tokenizer_dir.is_dir():
        shutil.copytree(tokenizer_dir, out, dirs_exist_ok=True)
    config_path = out / "config.json"
    config = json.loads(config_path.read_text())
    config.update(_label_fields(meta))
    config_path.write_text(json.dumps(config, indent=2) + "\n")
    write_manifest(out, meta, "encoder")


def _label_fields(meta: CheckpointMeta) -> dict[str, Any]:
    """What Hugging Face reads to name and squash the logits, and the multi-label thresholds beside them."""
    fields: dict[str, Any] = {
        "id2label": {str(i): label for i, label in enumerate(meta.labels)},
        "label2id": {label: i for i, label in enumerate(meta.labels)},
        "problem_type": "multi_label_classification" if meta.multi_label else "single_label_classification",
    }
    if meta.multi_label:
        fields["thresholds"] = list(meta.thresholds) or [0.5] * len(meta.labels)
    return fields


def _unshared(tensors: dict[str, Any]) -> dict[str, Any]:
    """safetensors refuses tensors that share memory (tied embeddings): give each its own copy."""
    seen: set[int] = set()
    out = {}
    for name, tensor in tensors.items():
        pointer = tensor.data_ptr()
        out[name] = tensor.clone() if pointer in seen else tensor
        seen.add(pointer)
    return out
