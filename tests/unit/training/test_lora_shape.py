"""The LoRA shape as hyperparameters (a localft extension): checked, resolved, trained with, recorded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from localft.errors import InvalidRequestError
from localft.training import Hyperparameters, TrainSpec, run_training
from localft.training.auto import LORA_ALPHA, LORA_RANK, resolve
from localft.training.checkpoint import read_checkpoint
from localft.training.lora_causal import lora_targets

from .conftest import ListSink

torch.set_num_threads(1)


@pytest.mark.parametrize(
    ("given", "param", "fragment"),
    [
        ({"lora_rank": 0}, "hyperparameters.lora_rank", "whole number from 1 to 1024"),
        ({"lora_rank": 8.5}, "hyperparameters.lora_rank", "whole number"),
        ({"lora_alpha": 0}, "hyperparameters.lora_alpha", "greater than 0"),
        ({"lora_alpha": True}, "hyperparameters.lora_alpha", "greater than 0"),
        ({"lora_dropout": 1.0}, "hyperparameters.lora_dropout", "from 0 to below 1"),
        ({"lora_target_modules": []}, "hyperparameters.lora_target_modules", "list of layer names"),
        ({"lora_target_modules": ["q_proj", ""]}, "hyperparameters.lora_target_modules", "list of layer names"),
        ({"devices": 0}, "hyperparameters.devices", "whole number from 1 to 64"),
        ({"lora_r": 8}, "hyperparameters.lora_r", "Unknown hyperparameter 'lora_r'"),
    ],
)
def test_bad_values_name_the_field(given: dict[str, object], param: str, fragment: str) -> None:
    with pytest.raises(InvalidRequestError) as bad:
        Hyperparameters.from_dict(given)
    assert bad.value.param == param and fragment in bad.value.message


def test_extensions_show_only_where_given() -> None:
    assert set(Hyperparameters().to_dict()) == {"n_epochs", "batch_size", "learning_rate_multiplier"}
    chosen = Hyperparameters.from_dict({"lora_rank": 16, "lora_target_modules": "all-linear", "devices": 2})
    assert chosen.to_dict() == {
        "n_epochs": "auto", "batch_size": "auto", "learning_rate_multiplier": "auto", "lora_rank": 16,
        "lora_target_modules": ["all-linear"], "devices": 2,
    }  # fmt: skip


def test_auto_lora_keeps_the_default_scale_and_encoders_refuse_lora() -> None:
    default = resolve(Hyperparameters(), "causal_lm", 100)
    assert (default.lora_rank, default.lora_alpha, default.lora_dropout) == (LORA_RANK, LORA_ALPHA, 0.0)
    assert default.lora_target_modules is None
    wider = resolve(Hyperparameters(lora_rank=32), "causal_lm", 100)
    assert wider.lora_alpha == 2 * 32  # alpha / rank stays what the base learning rate was chosen at
    assert "lora_rank" not in resolve(Hyperparameters(), "encoder", 100).to_dict()
    with pytest.raises(InvalidRequestError) as bad:
        resolve(Hyperparameters(lora_dropout=0.1), "encoder", 100)
    assert bad.value.param == "hyperparameters.lora_dropout" and "fine-tuned in full" in bad.value.message


def test_target_layers_are_checked_against_the_model(tiny_causal_lm: Path) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_causal_lm)
    assert lora_targets(model, None) == ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert lora_targets(model, ["all-linear"]) == ["all-linear"]
    with pytest.raises(InvalidRequestError) as bad:
        lora_targets(model, ["q_proj", "query"])
    assert bad.value.param == "hyperparameters.lora_target_modules"
    assert "query is not a linear layer of this model" in bad.value.message and "gate_proj" in bad.value.message


def test_a_run_trains_the_lora_shape_it_was_given(
    tiny_causal_lm: Path, sentiment_files: tuple[Path, Path], tmp_path: Path
) -> None:
    train, _ = sentiment_files
    hp = Hyperparameters(
        n_epochs=1, batch_size=8, lora_rank=4, lora_alpha=12, lora_dropout=0.1,
        lora_target_modules=["q_proj", "gate_proj"],
    )  # fmt: skip
    result = run_training(TrainSpec(str(tiny_causal_lm), train, tmp_path / "out", hyperparameters=hp), ListSink())

    adapter = json.loads((result.final_checkpoint / "adapter" / "adapter_config.json").read_text())
    assert (adapter["r"], adapter["lora_alpha"], adapter["lora_dropout"]) == (4, 12, 0.1)
    assert set(adapter["target_modules"]) == {"q_proj", "gate_proj"}
    recorded = read_checkpoint(result.final_checkpoint).hyperparameters
    assert (recorded["lora_rank"], recorded["lora_alpha"], recorded["lora_target_modules"]) == (
        4, 12.0, ["q_proj", "gate_proj"],
    )  # fmt: skip
    assert result.hyperparameters["lora_target_modules"] == ["q_proj", "gate_proj"]
    from safetensors.torch import load_file

    weights = load_file(result.final_checkpoint / "adapter" / "adapter_model.safetensors")
    shapes = {name.split(".")[-3]: tuple(w.shape) for name, w in weights.items() if "lora_A" in name}
    assert set(shapes) == {"q_proj", "gate_proj"} and all(shape[0] == 4 for shape in shapes.values())


def test_the_cli_flags_become_hyperparameters_only_where_given() -> None:
    from localft.cli.jobs import hyperparameters

    plain = hyperparameters(None, None, None)
    assert plain == {"n_epochs": "auto", "batch_size": "auto", "learning_rate_multiplier": "auto"}
    scaled = hyperparameters(
        2, None, None, None, lora_rank=16, lora_alpha=None, lora_dropout=0.05, lora_target_modules="q_proj, v_proj",
        devices=2,
    )  # fmt: skip
    assert scaled == {
        "n_epochs": 2, "batch_size": "auto", "learning_rate_multiplier": "auto", "lora_rank": 16, "lora_dropout": 0.05,
        "lora_target_modules": ["q_proj", "v_proj"], "devices": 2,
    }  # fmt: skip
    assert Hyperparameters.from_dict(scaled).to_dict() == scaled
