"""A fine-tuned model from training to deletion: what is stored, what a delete removes, a chat caught by a delete,
a run that diverges, and the worker that ran it."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import openai
import pytest
import torch
from click.testing import CliRunner

from localft.api.server import EmbeddedServer
from localft.cli import main
from localft.settings import Settings
from localft.training.checkpoint import STATE_FILE


def _train(client: openai.OpenAI, model: Path, train_file: Path, helpers: Any, epochs: int = 2) -> Any:
    upload = client.files.create(file=train_file.open("rb"), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(
        model=str(model), training_file=upload.id, hyperparameters={"n_epochs": epochs, "batch_size": 4}
    )
    return helpers.wait_for_status(client, job.id, {"succeeded", "failed"}, timeout=300)


def test_a_model_holds_what_serves_and_a_delete_removes_it_all(
    client: openai.OpenAI, settings: Settings, tiny_causal_lm: Path, train_file: Path, helpers: Any
) -> None:
    done = _train(client, tiny_causal_lm, train_file, helpers)
    assert done.status == "succeeded", done.error
    model_id = done.fine_tuned_model
    assert model_id is not None
    served = settings.models_dir / done.id
    job_folder = settings.jobs_dir / done.id
    assert (served / "adapter").is_dir() and not (served / STATE_FILE).exists()
    final = job_folder / "step-000006"
    for weights in (served / "adapter").iterdir():  # the model's weights are its final checkpoint's, stored once
        assert weights.stat().st_ino == (final / "adapter" / weights.name).stat().st_ino
    assert not list(job_folder.glob(f"*/{STATE_FILE}")) and not list(job_folder.glob("progress-*"))
    checkpoints = [c.fine_tuned_model_checkpoint for c in client.fine_tuning.jobs.checkpoints.list(done.id)]
    assert len(checkpoints) == 2
    question = [{"role": "user", "content": "my bag was lost again"}]
    assert client.chat.completions.create(model=checkpoints[-1], messages=question).choices

    client.models.delete(model_id)
    for gone in (model_id, *checkpoints):
        with pytest.raises(openai.NotFoundError):
            client.models.retrieve(gone)
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(model=gone, messages=question)
    assert client.fine_tuning.jobs.checkpoints.list(done.id).data == []
    job = client.fine_tuning.jobs.retrieve(done.id)
    assert job.fine_tuned_model is None and job.status == "succeeded"
    assert [e.message for e in client.fine_tuning.jobs.list_events(done.id, limit=1).data] == [
        f"Fine-tuned model deleted: {model_id}"
    ]
    assert not served.exists() and not job_folder.exists()


def test_a_model_deleted_during_a_chat_is_404_to_that_chat(
    live_server: EmbeddedServer, client: openai.OpenAI, tiny_causal_lm: Path, train_file: Path, helpers: Any
) -> None:
    done = _train(client, tiny_causal_lm, train_file, helpers, epochs=1)
    model_id = done.fine_tuned_model
    assert model_id is not None and live_server.app is not None
    chat = live_server.app.state.chat
    engine = chat.engine

    class DeletedMidway:
        """The engine, with the model deleted (through the API) just as this request reaches it."""

        def chat(self, artifact: Any, request: Any) -> Any:
            client.models.delete(model_id)
            return engine().chat(artifact, request)

    chat.engine = DeletedMidway
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model=model_id, messages=[{"role": "user", "content": "hi"}])
    assert missing.value.code == "model_not_found"


def test_a_diverging_run_fails_with_its_code_and_publishes_nothing(
    client: openai.OpenAI, tiny_causal_lm: Path, train_file: Path, tmp_path: Path, helpers: Any
) -> None:
    from transformers import AutoModelForCausalLM

    broken = shutil.copytree(tiny_causal_lm, tmp_path / "nan-model")
    model = AutoModelForCausalLM.from_pretrained(broken)
    with torch.no_grad():
        model.model.norm.weight.fill_(float("nan"))  # what a far too high learning rate leaves behind
    model.save_pretrained(broken)
    done = _train(client, broken, train_file, helpers)
    assert done.status == "failed" and done.error is not None
    assert (done.error.code, done.error.param) == ("non_finite_loss", "hyperparameters.learning_rate_multiplier")
    assert done.fine_tuned_model is None
    assert not [m.id for m in client.models.list() if m.id.startswith("ft:")]


def test_the_worker_is_shown_with_its_job_and_listed_live(
    live_server: EmbeddedServer, client: openai.OpenAI, tiny_causal_lm: Path, train_file: Path, helpers: Any
) -> None:
    done = _train(client, tiny_causal_lm, train_file, helpers, epochs=1)
    worker_id = client.fine_tuning.jobs.retrieve(done.id).model_extra["worker_id"]  # type: ignore[index]
    assert worker_id and worker_id.split(":")[1].isdigit()
    runner = CliRunner()
    shown = runner.invoke(main, ["jobs", "show", done.id, "--base-url", live_server.base_url])
    assert shown.exit_code == 0 and worker_id in shown.output
    listed = runner.invoke(main, ["workers", "--base-url", live_server.base_url])
    assert listed.exit_code == 0 and worker_id in listed.output, listed.output
    live = client.get("/workers", cast_to=object)
    assert [w["id"] for w in live["data"]] == [worker_id]  # type: ignore[index]
