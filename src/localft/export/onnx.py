"""Encoder classifiers as ONNX: `model.onnx` (token ids and attention mask in, logits out) beside its tokenizer.

Only a classifier with one encoder and nothing else (or a legacy `encoder` checkpoint) fits one graph over one
tokenizer; an ensemble's members tokenize differently (or, for TF-IDF, not at all), so it is exported as a Hugging
Face folder instead. The tokenizer is saved to return only what the graph takes and to cut texts where localft does.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

from localft.errors import InvalidRequestError
from localft.export.classifier import export_legacy_encoder, export_pooled
from localft.export.manifest import write_manifest
from localft.training.checkpoint import CheckpointMeta

ONNX_FILE = "model.onnx"
OPSET = 17
INPUT_NAMES = ["input_ids", "attention_mask"]


def export_onnx(checkpoint: Path, meta: CheckpointMeta, out: Path, cache_dir: Path) -> None:
    """Write `model.onnx`, the tokenizer and the labels of an encoder classifier to `out`."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from localft.export.hf_pooled import LocalftPooledForSequenceClassification

    if meta.family == "classifier" and (len(meta.members) != 1 or meta.members[0].get("kind") != "encoder"):
        raise InvalidRequestError(
            "Only a classifier with a single encoder exports as ONNX; this one has members "
            f"{', '.join(str(m.get('kind')) for m in meta.members)}: export it without format=onnx.",
            param="format",
            code="format_not_available",
        )
    with tempfile.TemporaryDirectory(prefix="localft-onnx-") as scratch:
        folder = Path(scratch)
        if meta.family == "classifier":
            export_pooled(checkpoint, meta, folder, cache_dir)
            tokenizer_dir, max_length = folder / str(meta.members[0]["folder"]), int(meta.members[0]["max_length"])
        else:
            export_legacy_encoder(checkpoint, meta, folder)
            tokenizer_dir, max_length = folder, meta.max_length
        loader = LocalftPooledForSequenceClassification if meta.family == "classifier" else None
        model = (loader or AutoModelForSequenceClassification).from_pretrained(folder)
        model.eval()
        # Init arguments are what a tokenizer saves: the graph's inputs only, texts cut where localft cuts them.
        tokenizer = AutoTokenizer.from_pretrained(
            tokenizer_dir, model_input_names=list(INPUT_NAMES), model_max_length=max_length
        )
        _trace(model, tokenizer, out / ONNX_FILE)
        tokenizer.save_pretrained(out)
        config = json.loads((folder / "config.json").read_text())
        labels = {k: config[k] for k in ("id2label", "label2id", "problem_type", "thresholds") if k in config}
        (out / "config.json").write_text(json.dumps(labels | {"max_length": max_length}, indent=2) + "\n")
    write_manifest(out, meta, "onnx")
    shutil.rmtree(out / "__pycache__", ignore_errors=True)


def _trace(model: Any, tokenizer: Any, path: Path) -> None:
    """Export with the tracing exporter: dynamic batch and length, logits out."""
    import torch

    class Logits(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            return self.inner(input_ids=input_ids, attention_mask=attention_mask).logits

    sample = tokenizer(["an example", "another example text"], padding=True, return_tensors="pt")
    with warnings.catch_warnings():  # the tracer's notes on branches that depend on shapes only, never on values
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Logits(model),
            (sample["input_ids"], sample["attention_mask"]),
            str(path),
            input_names=INPUT_NAMES,
            output_names=["logits"],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "tokens"},
                "attention_mask": {0: "batch", 1: "tokens"},
                "logits": {0: "batch"},
            },
            opset_version=OPSET,
            dynamo=False,
        )
