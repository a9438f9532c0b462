"""Checkpoints in the training team's format, built from the tiny fixtures in seconds (no training needed).

A LoRA adapter initialised with random (non-zero) weights changes the base model's outputs, which is enough to see
adapters applied, shared and swapped; an encoder gets a fresh classification head.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from localft.inference.engine import InferenceEngine
from localft.training.checkpoint import CheckpointMeta, write_meta

SENTIMENTS = ["positive", "negative", "neutral"]


def make_lora_checkpoint(base: Path, folder: Path, *, seed: int = 0, **meta: Any) -> Path:
    """A causal-LM classifier checkpoint: random LoRA adapter + tokenizer + meta (labels default: sentiments)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base)
    config = LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(model, config).save_pretrained(folder / "adapter")
    AutoTokenizer.from_pretrained(base).save_pretrained(folder / "tokenizer")
    fields: dict[str, Any] = {"task": "classification", "labels": SENTIMENTS, "step": 3, "epoch": 1}
    fields.update(meta)
    write_meta(folder, CheckpointMeta(base_model=str(base), family="causal_lm", **fields))
    return folder


def make_encoder_checkpoint(base: Path, folder: Path, *, labels: list[str], **meta: Any) -> Path:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(0)
    problem = "multi_label_classification" if meta.get("multi_label") else "single_label_classification"
    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=len(labels), problem_type=problem)
    model.save_pretrained(folder / "model")
    AutoTokenizer.from_pretrained(base).save_pretrained(folder / "tokenizer")
    fields: dict[str, Any] = {"task": "classification", "labels": labels, "step": 2, "epoch": 1}
    fields.update(meta)
    write_meta(folder, CheckpointMeta(base_model=str(base), family="encoder", **fields))
    return folder


@pytest.fixture(scope="session")
def lora_checkpoint(tiny_causal_lm: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_lora_checkpoint(tiny_causal_lm, tmp_path_factory.mktemp("ckpt") / "step-000003")


@pytest.fixture(scope="session")
def encoder_checkpoint(tiny_encoder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_encoder_checkpoint(tiny_encoder, tmp_path_factory.mktemp("enc") / "step-000002", labels=SENTIMENTS)


@pytest.fixture
def engine(tmp_path: Path) -> InferenceEngine:
    import torch

    # The test's own tensor work (tiny checkpoints) stays single-threaded, so the main thread keeps no OpenMP team
    # beside the engine's compute thread (compute_thread.py).
    torch.set_num_threads(1)
    return InferenceEngine(tmp_path / "cache", device="cpu")


@pytest.fixture(scope="session")
def make_lora() -> Any:
    """`make_lora(base, folder, labels=..., assistant_prefix=..., multi_label=..., seed=...)` -> checkpoint folder."""
    return make_lora_checkpoint


@pytest.fixture(scope="session")
def make_encoder() -> Any:
    """`make_encoder(base, folder, labels=..., multi_label=..., thresholds=...)` -> checkpoint folder."""
    return make_encoder_checkpoint
