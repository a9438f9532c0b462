"""The LoRA shape through the API: given with the job, shown only where given, trained with, refused where wrong."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import openai
import pytest
from openai.types.fine_tuning import FineTuningJob

from localft.settings import Settings


def _upload(client: openai.OpenAI, path: Path) -> str:
    return client.files.create(file=path.open("rb"), purpose="fine-tune").id


def test_a_job_trains_the_lora_shape_it_asks_for(
    client: openai.OpenAI, settings: Settings, tiny_causal_lm: Path, tmp_path: Path, helpers: Any
) -> None:
    lora = {"lora_rank": 4, "lora_alpha": 8, "lora_dropout": 0.05, "lora_target_modules": ["q_proj", "v_proj"]}
    job = client.fine_tuning.jobs.create(
        model=str(tiny_causal_lm),
        training_file=_upload(client, helpers.write_chat_jsonl(tmp_path / "train.jsonl", 12)),
        hyperparameters={"n_epochs": 1, "batch_size": 4, **lora},  # type: ignore[typeddict-item]
    )
    assert {k: v for k, v in job.hyperparameters.model_dump().items() if k.startswith("lora")} == lora
    done = helpers.wait_for_status(client, job.id, {"succeeded", "failed"}, timeout=300)
    assert done.status == "succeeded", done.error
    shown = done.hyperparameters.model_dump()
    assert {k: shown[k] for k in lora} == lora and "devices" not in shown and "max_length" not in shown
    adapter = json.loads((settings.models_dir / job.id / "adapter" / "adapter_config.json").read_text())
    assert (adapter["r"], adapter["lora_alpha"], set(adapter["target_modules"])) == (4, 8, {"q_proj", "v_proj"})
    answer = client.chat.completions.create(
        model=done.fine_tuned_model or "", messages=[{"role": "user", "content": "the flight was great thanks"}]
    )
    assert answer.choices[0].message.content in ("positive", "negative")


def test_a_job_without_them_looks_like_openais(idle_client: openai.OpenAI, train_file: Path) -> None:
    job = idle_client.fine_tuning.jobs.create(
        model="gpt-4o-mini", training_file=_upload(idle_client, train_file), hyperparameters={"n_epochs": 2}
    )
    assert set(job.hyperparameters.model_dump(exclude_none=True)) == {
        "n_epochs", "batch_size", "learning_rate_multiplier",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("hyperparameters", "param", "fragment"),
    [
        ({"lora_rank": 2048}, "hyperparameters.lora_rank", "whole number from 1 to 1024"),
        ({"lora_dropout": -0.1}, "hyperparameters.lora_dropout", "from 0 to below 1"),
        ({"lora_target_modules": [""]}, "hyperparameters.lora_target_modules", "list of layer names"),
        ({"devices": 100}, "hyperparameters.devices", "whole number from 1 to 64"),
    ],
)
def test_bad_values_are_400_naming_the_field(
    idle_client: openai.OpenAI, train_file: Path, hyperparameters: dict[str, object], param: str, fragment: str
) -> None:
    body = {
        "model": "gpt-4o-mini",
        "training_file": _upload(idle_client, train_file),
        "hyperparameters": hyperparameters,
    }
    with pytest.raises(openai.BadRequestError) as bad:
        idle_client.post("/fine_tuning/jobs", body=body, cast_to=FineTuningJob)
    assert bad.value.param == param and fragment in bad.value.message


def test_lora_on_an_encoder_or_a_layer_the_model_lacks_fails_the_job_naming_the_field(
    client: openai.OpenAI, tiny_encoder: Path, tiny_causal_lm: Path, tmp_path: Path, helpers: Any
) -> None:
    training = _upload(client, helpers.write_chat_jsonl(tmp_path / "train.jsonl", 12))
    for model, hyperparameters, param, fragment in [
        (tiny_encoder, {"lora_rank": 4}, "hyperparameters.lora_rank", "an encoder is fine-tuned in full"),
        (tiny_causal_lm, {"lora_target_modules": ["c_attn"]}, "hyperparameters.lora_target_modules", "q_proj"),
    ]:
        job = client.fine_tuning.jobs.create(
            model=str(model),
            training_file=training,
            hyperparameters=hyperparameters,  # type: ignore[arg-type]
        )
        failed = helpers.wait_for_status(client, job.id, {"failed", "succeeded"}, timeout=120)
        assert failed.status == "failed" and failed.error is not None
        assert failed.error.param == param and fragment in failed.error.message
        assert failed.error.code == "invalid_hyperparameters"
