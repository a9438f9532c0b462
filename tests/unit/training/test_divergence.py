"""A run whose loss stops being a finite number fails with `non_finite_loss` and writes no checkpoint: a model
trained on from there answers every request with an error, so it must never be published."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from localft.errors import TrainingError
from localft.training import Hyperparameters, TrainSpec, run_training
from localft.training.dataset import read_examples

from .conftest import ListSink, sentiment_records, write_jsonl


def nan_copy(model: Path, target: Path) -> Path:
    """The tiny causal LM with one weight gone NaN (what a far too high learning rate leaves behind)."""
    from transformers import AutoModelForCausalLM

    shutil.copytree(model, target)
    broken = AutoModelForCausalLM.from_pretrained(target)
    with torch.no_grad():
        broken.model.norm.weight.fill_(float("nan"))
    broken.save_pretrained(target)
    return target


def test_a_non_finite_loss_fails_the_run_before_any_checkpoint(tiny_causal_lm: Path, tmp_path: Path) -> None:
    train = write_jsonl(tmp_path / "train.jsonl", sentiment_records(2))
    out = tmp_path / "out"
    spec = TrainSpec(
        base_model=str(nan_copy(tiny_causal_lm, tmp_path / "nan-model")),
        training_file=train,
        output_dir=out,
        hyperparameters=Hyperparameters(n_epochs=1, batch_size=4),
    )
    sink = ListSink()
    with pytest.raises(TrainingError) as failed:
        run_training(spec, sink)
    assert failed.value.code == "non_finite_loss"
    assert failed.value.param == "hyperparameters.learning_rate_multiplier"
    assert (
        "Training diverged at step 1 of" in failed.value.message
        and "lower learning_rate_multiplier" in failed.value.message
    )
    assert sink.checkpoints == [] and not list(out.glob("step-*"))


def test_training_reads_past_a_byte_order_mark(tmp_path: Path) -> None:
    plain = write_jsonl(tmp_path / "plain.jsonl", sentiment_records(1))
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b"\xef\xbb\xbf" + plain.read_bytes())
    assert [e.messages for e in read_examples(bom)] == [e.messages for e in read_examples(plain)]
