"""A real fine-tune through the API: tiny local model, real engine, embedded worker, openai SDK end to end."""

from __future__ import annotations

import base64
import csv
import dataclasses
import io
import re
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from localft.api.server import EmbeddedServer
from localft.settings import Settings

OPENAI_COLUMNS = ["step", "train_loss", "train_accuracy", "valid_loss", "valid_mean_token_accuracy"]
METRIC_KEYS = {
    "step", "train_loss", "train_mean_token_accuracy", "valid_loss", "valid_mean_token_accuracy", "full_valid_loss",
    "full_valid_mean_token_accuracy", "total_steps",
}  # fmt: skip


def _upload(client: openai.OpenAI, path: Path) -> str:
    return client.files.create(file=path.open("rb"), purpose="fine-tune").id


def _messages(client: openai.OpenAI, job_id: str) -> list[str]:
    """All event messages, oldest first (the SDK pages through newest-first pages)."""
    return [e.message for e in client.fine_tuning.jobs.list_events(job_id, limit=7)][::-1]


def test_upload_train_succeed_answer_delete(
    client: openai.OpenAI, live_server: EmbeddedServer, settings: Settings, tiny_causal_lm: Path, tmp_path: Path,
    helpers: Any,
) -> None:  # fmt: skip
    training = _upload(client, helpers.write_chat_jsonl(tmp_path / "train.jsonl", 12))
    validation = _upload(client, helpers.write_chat_jsonl(tmp_path / "valid.jsonl", 4))
    job = client.fine_tuning.jobs.create(
        model=str(tiny_causal_lm),
        training_file=training,
        validation_file=validation,
        suffix="tiny",
        hyperparameters={"n_epochs": 2, "batch_size": 4},
    )
    done = helpers.wait_for_status(client, job.id, {"succeeded", "failed"}, timeout=300)
    assert done.status == "succeeded", done.error
    assert re.fullmatch(rf"ft:{tiny_causal_lm.name}:localft:tiny:[A-Za-z0-9]{{8}}", done.fine_tuned_model or "")
    assert done.trained_tokens and done.trained_tokens > 0 and done.finished_at and done.estimated_finish is None
    assert (done.hyperparameters.n_epochs, done.hyperparameters.batch_size) == (2, 4)
    assert isinstance(done.hyperparameters.learning_rate_multiplier, float)

    messages = _messages(client, job.id)
    expected_order = [
        f"Created fine-tuning job: {job.id}",
        f"Validating training file: {training} and validation file: {validation}",
        "Files validated, moving job to queued state",
        "Fine-tuning job started",
        "Step 1/6: training loss=",
        "Checkpoint created at step 3",
        "Checkpoint created at step 6",
        f"New fine-tuned model created: {done.fine_tuned_model}",
        "The job has successfully completed",
    ]
    positions = [next(i for i, m in enumerate(messages) if m.startswith(want)) for want in expected_order]
    assert positions == sorted(positions), messages
    metrics = [e for e in client.fine_tuning.jobs.list_events(job.id, limit=100) if e.type == "metrics"]
    assert metrics and all(set(e.data or {}) >= METRIC_KEYS for e in metrics)
    epoch_ends = [e.data for e in metrics if e.data and e.data.get("full_valid_loss") is not None]
    assert len(epoch_ends) == 2 and all("full_valid_accuracy" in d and "full_valid_macro_f1" in d for d in epoch_ends)

    checkpoints = client.fine_tuning.jobs.checkpoints.list(job.id).data
    assert [c.step_number for c in checkpoints] == [6, 3]
    assert checkpoints[0].fine_tuned_model_checkpoint == f"{done.fine_tuned_model}:ckpt-step-6"
    assert checkpoints[0].object == "fine_tuning.job.checkpoint" and checkpoints[0].fine_tuning_job_id == job.id
    assert checkpoints[0].metrics.full_valid_loss is not None

    # The result file is base64-encoded CSV, as OpenAI serves it; `format=csv` gives the plain text.
    [result_id] = done.result_files
    assert client.files.retrieve(result_id).purpose == "fine-tune-results"
    text = base64.b64decode(client.files.content(result_id).read()).decode()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0])[:5] == OPENAI_COLUMNS and "full_valid_accuracy" in rows[0]
    assert [int(r["step"]) for r in rows] == list(range(1, 7))
    plain = httpx.get(f"{live_server.base_url}/files/{result_id}/content", params={"format": "csv"}).text
    assert plain == text

    # The fine-tuned model and its checkpoints answer, inside the label set, with label probabilities.
    model_id = done.fine_tuned_model
    assert model_id is not None
    for model in (model_id, checkpoints[1].fine_tuned_model_checkpoint):
        answer = client.chat.completions.create(
            model=model,
            messages=[
                {"role": "system", "content": "Classify the sentiment of this tweet."},
                {"role": "user", "content": "my bag was lost again 99"},
            ],
            temperature=0,
            logprobs=True,
            top_logprobs=2,
        )
        assert answer.model == model
        assert answer.choices[0].message.content in ("positive", "negative")
        assert answer.usage is not None and answer.usage.prompt_tokens > 0
    assert model_id in [m.id for m in client.models.list()]
    assert client.models.retrieve(model_id).owned_by == "localft"

    weights = [p for p in settings.models_dir.iterdir()]
    assert len(weights) == 1
    deleted = client.models.delete(model_id)
    assert (deleted.id, deleted.deleted) == (model_id, True)
    assert not weights[0].exists()
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model=model_id, messages=[{"role": "user", "content": "hi"}])


def test_max_length_cuts_examples_and_shows_where_it_was_asked_for(
    client: openai.OpenAI, settings: Settings, tiny_causal_lm: Path, tmp_path: Path, helpers: Any
) -> None:
    """`max_length` (a localft extension of the hyperparameters) reaches the engine, the job's events and its
    checkpoints; a length past the model's positions is cut to them, with a warning."""
    from localft.training.checkpoint import read_checkpoint

    training = _upload(client, helpers.write_chat_jsonl(tmp_path / "train.jsonl", 12))
    for asked, ran in [(24, 24), (1024, 512)]:  # the tiny model has 512 positions
        job = client.fine_tuning.jobs.create(
            model=str(tiny_causal_lm),
            training_file=training,
            hyperparameters={"n_epochs": 1, "batch_size": 4, "max_length": asked},  # type: ignore[typeddict-unknown-key]
        )
        assert job.hyperparameters.model_dump()["max_length"] == asked
        done = helpers.wait_for_status(client, job.id, {"succeeded", "failed"}, timeout=300)
        assert done.status == "succeeded", done.error
        assert done.hyperparameters.model_dump()["max_length"] == ran
        events = client.fine_tuning.jobs.list_events(job.id, limit=100).data
        assert any(f"max length {ran} tokens" in e.message for e in events)
        warnings = [e.message for e in events if e.level == "warn"]
        assert warnings == (
            []
            if asked == ran
            else [f"max_length 1024 is more than the 512 positions of {tiny_causal_lm}: examples are cut to 512 tokens"]
        )
        [checkpoint] = client.fine_tuning.jobs.checkpoints.list(job.id).data
        folder = next(settings.jobs_dir.joinpath(job.id).glob("step-*"))
        assert read_checkpoint(folder).max_length == ran and checkpoint.step_number == 3
    # 24 tokens cut every example (each is about 30): fewer tokens trained than at 512.
    jobs = client.fine_tuning.jobs.list().data
    tokens = {j.hyperparameters.model_dump()["max_length"]: j.trained_tokens for j in jobs}
    assert tokens[24] < tokens[512]


def test_cancel_stops_training_and_frees_the_worker(
    client: openai.OpenAI, tiny_causal_lm: Path, tmp_path: Path, helpers: Any
) -> None:
    training = _upload(client, helpers.write_chat_jsonl(tmp_path / "train.jsonl", 12))
    long_job = client.fine_tuning.jobs.create(
        model=str(tiny_causal_lm),
        training_file=training,
        hyperparameters={"n_epochs": 50, "batch_size": 1, "max_length": 1024},  # type: ignore[typeddict-unknown-key]
    )
    next_job = client.fine_tuning.jobs.create(
        model=str(tiny_causal_lm), training_file=training, hyperparameters={"n_epochs": 1, "batch_size": 4}
    )
    helpers.wait_for_status(client, long_job.id, {"running"}, timeout=120)
    assert client.fine_tuning.jobs.retrieve(next_job.id).status == "queued"  # one job at a time
    _wait_for_message(client, long_job.id, "Step 3/")
    running = client.fine_tuning.jobs.retrieve(long_job.id)
    assert running.estimated_finish is not None and running.estimated_finish > running.created_at
    # "auto" is resolved as soon as training starts, as OpenAI shows it while running, and a max_length past the
    # model's 512 positions shows what runs.
    assert isinstance(running.hyperparameters.learning_rate_multiplier, float)
    assert running.hyperparameters.model_dump()["max_length"] == 512
    assert client.fine_tuning.jobs.cancel(long_job.id).status == "cancelled"
    # The embedded worker runs one job at a time: the next one starting proves the first one stopped.
    helpers.wait_for_status(client, next_job.id, {"running", "succeeded"}, timeout=60)
    cancelled = client.fine_tuning.jobs.retrieve(long_job.id)
    assert cancelled.status == "cancelled" and cancelled.fine_tuned_model is None
    assert helpers.wait_for_status(client, next_job.id, {"succeeded"}, timeout=120).fine_tuned_model


def test_pause_then_resume_continues_from_the_checkpoint(
    client: openai.OpenAI, tiny_causal_lm: Path, tmp_path: Path, helpers: Any
) -> None:
    training = _upload(client, helpers.write_chat_jsonl(tmp_path / "train.jsonl", 12))
    job = client.fine_tuning.jobs.create(
        model=str(tiny_causal_lm), training_file=training, hyperparameters={"n_epochs": 4, "batch_size": 4}
    )
    _wait_for_message(client, job.id, "Checkpoint created at step")
    assert client.fine_tuning.jobs.pause(job.id).status == "paused"
    assert client.fine_tuning.jobs.resume(job.id).status == "queued"
    done = helpers.wait_for_status(client, job.id, {"succeeded", "failed"}, timeout=300)
    assert done.status == "succeeded", done.error
    messages = _messages(client, job.id)
    paused = messages.index("Fine-tuning job paused")
    resumed = [m for m in messages[paused:] if m.startswith("Resuming fine-tuning job from checkpoint at step")]
    assert resumed, messages
    assert len(client.fine_tuning.jobs.checkpoints.list(job.id).data) == 3  # one per epoch, the newest three


def _wait_for_message(client: openai.OpenAI, job_id: str, prefix: str, timeout: float = 120) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(e.message.startswith(prefix) for e in client.fine_tuning.jobs.list_events(job_id, limit=50).data):
            return
        time.sleep(0.05)
    pytest.fail(f"no event starting with {prefix!r} in job {job_id}: {_messages(client, job_id)[-5:]}")


def test_a_job_runs_on_postgresql(
    settings: Settings, postgres_url: str, tiny_causal_lm: Path, tmp_path: Path, helpers: Any
) -> None:
    on_postgres = dataclasses.replace(settings, database_url=postgres_url)
    with EmbeddedServer(on_postgres, lease_seconds=3) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0)
        assert httpx.get(f"{server.root_url}/health").json()["database"] == "postgresql"
        training = _upload(client, helpers.write_chat_jsonl(tmp_path / "train.jsonl", 12))
        job = client.fine_tuning.jobs.create(
            model=str(tiny_causal_lm), training_file=training, hyperparameters={"n_epochs": 1, "batch_size": 4}
        )
        done = helpers.wait_for_status(client, job.id, {"succeeded", "failed"}, timeout=300)
        assert done.status == "succeeded", done.error
        assert [c.step_number for c in client.fine_tuning.jobs.checkpoints.list(job.id)] == [3]
        assert done.fine_tuned_model in [m.id for m in client.models.list()]
