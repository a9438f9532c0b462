"""`/v1/fine_tuning/jobs` through the openai SDK, on a server without a worker so jobs stay where tests put them."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai.types.fine_tuning import FineTuningJob

from localft.api.server import EmbeddedServer
from localft.jobs.store import Store


def _upload(client: openai.OpenAI, path: Path) -> str:
    return client.files.create(file=path.open("rb"), purpose="fine-tune").id


def test_create_answers_at_once_then_validates_and_queues(
    helpers: Any, idle_client: openai.OpenAI, train_file: Path
) -> None:
    training = _upload(idle_client, train_file)
    validation = _upload(idle_client, helpers.write_chat_jsonl(train_file.with_name("valid.jsonl"), 4))
    job = idle_client.fine_tuning.jobs.create(
        model="gpt-4o-mini",
        training_file=training,
        validation_file=validation,
        suffix="airline",
        seed=7,
        metadata={"team": "support"},
        method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 2}}},
    )
    assert job.object == "fine_tuning.job" and job.id.startswith("ftjob-")
    assert job.status in ("validating_files", "queued")
    assert (job.model, job.seed, job.metadata, job.user_provided_suffix) == (  # type: ignore[attr-defined]
        "auto", 7, {"team": "support"}, "airline",
    )  # fmt: skip
    assert job.hyperparameters.n_epochs == 2 and job.hyperparameters.batch_size == "auto"
    assert job.hyperparameters.model_dump() == {"n_epochs": 2, "batch_size": "auto", "learning_rate_multiplier": "auto"}
    assert job.method is not None and job.method.type == "supervised"
    assert (job.fine_tuned_model, job.trained_tokens, job.result_files, job.error) == (None, None, [], None)
    queued = helpers.wait_for_status(idle_client, job.id, {"queued"})
    assert queued.training_file == training and queued.validation_file == validation
    messages = [e.message for e in idle_client.fine_tuning.jobs.list_events(job.id)]
    assert messages == [
        "Files validated, moving job to queued state",
        f"Validating training file: {training} and validation file: {validation}",
        f"Created fine-tuning job: {job.id}",
    ]
    assert idle_client.fine_tuning.jobs.checkpoints.list(job.id).data == []


def test_too_few_examples_fails_the_job_with_openais_code(
    helpers: Any, idle_client: openai.OpenAI, tmp_path: Path
) -> None:
    job = idle_client.fine_tuning.jobs.create(
        model="gpt-4o-mini", training_file=_upload(idle_client, helpers.write_chat_jsonl(tmp_path / "few.jsonl", 7))
    )
    failed = helpers.wait_for_status(idle_client, job.id, {"failed"})
    assert failed.error is not None
    assert (failed.error.code, failed.error.param) == ("invalid_n_examples", "training_file")
    assert failed.error.message == "Training file has 7 example(s), but must have at least 10 examples"
    assert failed.finished_at is not None
    newest = idle_client.fine_tuning.jobs.list_events(job.id, limit=1).data[0]
    assert newest.level == "error" and "must have at least 10 examples" in newest.message


def test_a_bad_line_fails_the_job_naming_the_line(helpers: Any, idle_client: openai.OpenAI, tmp_path: Path) -> None:
    path = helpers.write_chat_jsonl(tmp_path / "bad.jsonl", 12)
    lines = path.read_text().splitlines()
    lines[4] = json.dumps({"messages": [{"role": "user", "content": "no answer here"}]})
    path.write_text("\n".join(lines) + "\n")
    job = idle_client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=_upload(idle_client, path))
    failed = helpers.wait_for_status(idle_client, job.id, {"failed"})
    assert failed.error is not None and failed.error.code == "invalid_training_file"
    assert "line 5" in failed.error.message and "assistant" in failed.error.message


@pytest.mark.parametrize(
    ("change", "param", "fragment"),
    [
        ({"training_file": "file-doesnotexist"}, "training_file", "invalid training_file: file-doesnotexist"),
        ({"validation_file": "file-nope"}, "validation_file", "invalid validation_file: file-nope"),
        ({"model": "gpt-17-ultra"}, "model", "not available for fine-tuning"),
        ({"hyperparameters": {"n_epochs": 0}}, "hyperparameters.n_epochs", "whole number from 1 to 50"),
        ({"hyperparameters": {"epochs": 3}}, "hyperparameters.epochs", "Unrecognized request argument"),
        ({"hyperparameters": {"max_length": 8}}, "hyperparameters.max_length", "whole number from 16 to 32768"),
        ({"method": {"type": "dpo"}}, "method.type", "supervised"),
        ({"suffix": "a:b"}, "suffix", "letters, digits"),
        ({"seed": -1}, "seed", "greater than or equal to 0"),
        ({"integrations": [{"type": "wandb", "wandb": {"project": "p"}}]}, "integrations", "not supported"),
    ],
)
def test_bad_requests_are_400_naming_the_field(
    idle_client: openai.OpenAI, train_file: Path, change: dict[str, object], param: str, fragment: str
) -> None:
    body: dict[str, object] = {"model": "gpt-4o-mini", "training_file": _upload(idle_client, train_file), **change}
    with pytest.raises(openai.BadRequestError) as bad:
        idle_client.post("/fine_tuning/jobs", body=body, cast_to=FineTuningJob)
    assert bad.value.param == param
    assert fragment in bad.value.message
    assert idle_client.fine_tuning.jobs.list().data == []


def test_missing_required_field(idle_server: EmbeddedServer) -> None:
    response = httpx.post(f"{idle_server.base_url}/fine_tuning/jobs", json={"model": "gpt-4o-mini"})
    assert response.status_code == 400
    assert response.json()["error"] == {
        "message": "Missing required parameter: 'training_file'.", "type": "invalid_request_error",
        "param": "training_file", "code": None,
    }  # fmt: skip


def test_list_paginates_newest_first_and_filters_metadata(idle_client: openai.OpenAI, train_file: Path) -> None:
    training = _upload(idle_client, train_file)
    ids = [
        idle_client.fine_tuning.jobs.create(
            model="gpt-4o-mini", training_file=training, metadata={"parity": "even" if i % 2 == 0 else "odd"}
        ).id
        for i in range(5)
    ]
    page = idle_client.fine_tuning.jobs.list(limit=2)
    assert [j.id for j in page.data] == ids[::-1][:2] and page.has_more
    # Every page names its first and last item (`CursorPage.of`), as OpenAI's file and checkpoint pages do.
    wire = idle_client.fine_tuning.jobs.with_raw_response.list(limit=2).http_response.json()
    assert (wire["first_id"], wire["last_id"]) == (ids[4], ids[3])
    empty = idle_client.fine_tuning.jobs.with_raw_response.list(after=ids[0]).http_response.json()
    assert empty["data"] == [] and empty["first_id"] is None and empty["last_id"] is None
    assert [j.id for j in idle_client.fine_tuning.jobs.list(limit=2)] == ids[::-1]
    evens = idle_client.fine_tuning.jobs.list(metadata={"parity": "even"})
    assert [j.id for j in evens.data] == [ids[4], ids[2], ids[0]]


def test_cancel_pause_resume_state_machine(helpers: Any, idle_client: openai.OpenAI, train_file: Path) -> None:
    jobs = idle_client.fine_tuning.jobs
    job = jobs.create(model="gpt-4o-mini", training_file=_upload(idle_client, train_file))
    helpers.wait_for_status(idle_client, job.id, {"queued"})
    assert jobs.pause(job.id).status == "paused"
    with pytest.raises(openai.BadRequestError) as twice:
        jobs.pause(job.id)
    assert "it is 'paused'" in twice.value.message
    assert jobs.resume(job.id).status == "queued"
    cancelled = jobs.cancel(job.id)
    assert cancelled.status == "cancelled" and cancelled.finished_at is not None
    with pytest.raises(openai.BadRequestError):  # 400, not 409: the SDK would retry a 409
        jobs.cancel(job.id)
    messages = [e.message for e in jobs.list_events(job.id, limit=3).data]
    assert messages == ["Fine-tuning job cancelled", "Fine-tuning job resumed", "Fine-tuning job paused"]
    with pytest.raises(openai.NotFoundError):
        jobs.cancel("ftjob-unknown")


def test_events_paginate_with_after(helpers: Any, idle_client: openai.OpenAI, train_file: Path) -> None:
    job = idle_client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=_upload(idle_client, train_file))
    helpers.wait_for_status(idle_client, job.id, {"queued"})
    first = idle_client.fine_tuning.jobs.list_events(job.id, limit=2)
    assert len(first.data) == 2 and first.has_more
    rest = idle_client.fine_tuning.jobs.list_events(job.id, after=first.data[-1].id, limit=2)
    assert [e.message for e in rest.data] == [f"Created fine-tuning job: {job.id}"] and not rest.has_more
    assert all(e.object == "fine_tuning.job.event" and e.type == "message" for e in first.data + rest.data)
    with pytest.raises(openai.NotFoundError):
        idle_client.fine_tuning.jobs.list_events("ftjob-unknown")


def test_validation_left_behind_by_a_crash_runs_at_start(
    helpers: Any, idle_server: EmbeddedServer, train_file: Path
) -> None:
    client = openai.OpenAI(base_url=idle_server.base_url, api_key="x", max_retries=0)
    job = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=_upload(client, train_file))
    store = Store.open(idle_server.settings.db_url)
    helpers.wait_for_status(client, job.id, {"queued"})
    # Simulate a crash between create and validation, then a restart.
    store.transition(job.id, status="validating_files")
    idle_server.stop()
    deadline = time.monotonic() + 10
    with EmbeddedServer(idle_server.settings) as again:
        client = openai.OpenAI(base_url=again.base_url, api_key="x", max_retries=0)
        while client.fine_tuning.jobs.retrieve(job.id).status == "validating_files" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.fine_tuning.jobs.retrieve(job.id).status == "queued"
