"""Legacy encoder checkpoints export as the standard folder they hold; the plain chat template written into a
merged LLM renders prompts as localft's own plain template does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from localft.base_models.templates import PLAIN_GENERATION_PROMPT, render_plain
from localft.export import export_model
from localft.export.causal import PLAIN_CHAT_TEMPLATE
from localft.export.importing import checkpoint_from_export
from localft.training.checkpoint import CheckpointMeta, write_meta

LABELS = ["negative", "positive"]
TEXTS = ["my bag was lost", "the flight was great", "gate"]


def legacy_encoder(folder: Path, encoder: Path) -> Path:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(encoder, num_labels=2)
    model.save_pretrained(folder / "model")
    AutoTokenizer.from_pretrained(encoder).save_pretrained(folder / "tokenizer")
    meta = CheckpointMeta(
        base_model=str(encoder), family="encoder", task="classification", step=3, epoch=1, labels=LABELS
    )
    write_meta(folder, meta)
    return folder


def test_a_legacy_encoder_exports_as_a_standard_folder_with_its_labels(tiny_encoder: Path, tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    checkpoint = legacy_encoder(tmp_path / "ckpt", tiny_encoder)
    out = tmp_path / "export"
    assert export_model(checkpoint, out, tmp_path / "cache") == "encoder"
    config = json.loads((out / "config.json").read_text())
    assert config["id2label"] == {"0": "negative", "1": "positive"} and "auto_map" not in config
    model = AutoModelForSequenceClassification.from_pretrained(checkpoint / "model").eval()
    tokenizer = AutoTokenizer.from_pretrained(checkpoint / "tokenizer")
    with torch.no_grad():
        want = model(**tokenizer(TEXTS, padding=True, return_tensors="pt")).logits.argmax(-1).tolist()
    classify = pipeline("text-classification", model=str(out))
    assert [classify(t)[0]["label"] for t in TEXTS] == [LABELS[i] for i in want]
    back = checkpoint_from_export(out, tmp_path / "back")
    assert back.family == "encoder" and back.labels == LABELS and (tmp_path / "back" / "model").is_dir()


def test_a_legacy_encoder_exports_as_onnx(tiny_encoder: Path, tmp_path: Path) -> None:
    import numpy as np
    import onnxruntime
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    checkpoint = legacy_encoder(tmp_path / "ckpt", tiny_encoder)
    out = tmp_path / "onnx"
    export_model(checkpoint, out, tmp_path / "cache", fmt="onnx")
    tokenizer = AutoTokenizer.from_pretrained(out)
    batch = tokenizer(TEXTS, padding=True, truncation=True, return_tensors="np")
    got = onnxruntime.InferenceSession(str(out / "model.onnx")).run(None, dict(batch))[0]
    model = AutoModelForSequenceClassification.from_pretrained(checkpoint / "model").eval()
    with torch.no_grad():
        want = model(**{k: torch.from_numpy(v) for k, v in batch.items()}).logits.numpy()
    assert np.allclose(got, want, atol=1e-4)


def test_an_onnx_export_of_a_lora_fine_tune_or_an_unknown_format_is_refused(tmp_path: Path) -> None:
    from localft.errors import InvalidRequestError

    folder = tmp_path / "ckpt"
    folder.mkdir()
    write_meta(folder, CheckpointMeta(base_model="x", family="causal_lm", task="classification", step=1, epoch=1))
    with pytest.raises(InvalidRequestError, match="encoder classifiers"):
        export_model(folder, tmp_path / "a", tmp_path, fmt="onnx")
    with pytest.raises(InvalidRequestError, match="format"):
        export_model(folder, tmp_path / "b", tmp_path, fmt="gguf")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    with pytest.raises(InvalidRequestError, match="not empty"):
        export_model(folder, tmp_path / "full", tmp_path)


def test_the_plain_chat_template_renders_as_localfts(tiny_causal_lm: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_causal_lm)
    messages = [
        {"role": "system", "content": "Classify."},
        {"role": "user", "content": "my bag"},
        {"role": "assistant", "content": "negative"},
        {"role": "user", "content": "great"},
    ]
    rendered = tokenizer.apply_chat_template(
        messages, chat_template=PLAIN_CHAT_TEMPLATE, tokenize=False, add_generation_prompt=True
    )
    assert rendered == render_plain(messages, tokenizer.eos_token) + PLAIN_GENERATION_PROMPT
