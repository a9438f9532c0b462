"""Projects: each key belongs to one (or to none: an admin key), and a project sees only what it made.

Files, jobs, fine-tuned models, their checkpoints and result files belong to the project of the key that made them;
to other projects they do not exist (404, or 400 `file_not_found` where OpenAI names a missing file that way).
Base models are shared. Keys come from `LOCALFT_API_KEYS` and a keys file, and are never logged or echoed.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from localft.api.auth import KeyTable
from localft.api.server import EmbeddedServer
from localft.settings import Settings

KEYS = ("key-team-a:teamA", "key-team-b:teamB", "key-admin")


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys.txt"
    path.write_text("# one KEY[:PROJECT] a line\n\nkey-team-c:teamC\n")
    return path


@pytest.fixture
def projects_server(settings: Settings, keys_file: Path) -> Iterator[EmbeddedServer]:
    configured = dataclasses.replace(settings, api_keys=KEYS, api_keys_file=keys_file)
    with EmbeddedServer(configured, lease_seconds=3.0) as server:
        yield server


def _client(server: EmbeddedServer, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=key, max_retries=0)


def test_projects_see_only_their_own_files_and_jobs(
    projects_server: EmbeddedServer, train_file: Path, helpers: Any
) -> None:
    a, b = _client(projects_server, "key-team-a"), _client(projects_server, "key-team-b")
    admin, c = _client(projects_server, "key-admin"), _client(projects_server, "key-team-c")
    upload = a.files.create(file=train_file.open("rb"), purpose="fine-tune")
    own = b.files.create(file=train_file.open("rb"), purpose="fine-tune")
    assert [f.id for f in a.files.list()] == [upload.id]
    assert [f.id for f in b.files.list()] == [own.id]
    assert c.files.list().data == []
    assert {f.id for f in admin.files.list()} == {upload.id, own.id}
    for attempt in (
        lambda: b.files.retrieve(upload.id),
        lambda: b.files.content(upload.id),
        lambda: b.files.delete(upload.id),
        lambda: b.get(f"/files/{upload.id}/validation", cast_to=object),
        lambda: b.files.list(after=upload.id),
    ):
        with pytest.raises(openai.NotFoundError):
            attempt()
    with pytest.raises(openai.BadRequestError) as borrowed:
        b.fine_tuning.jobs.create(model="smollm2-135m-instruct", training_file=upload.id)
    assert borrowed.value.code == "file_not_found"

    job = a.fine_tuning.jobs.create(model="smollm2-135m-instruct", training_file=upload.id, suffix="a")
    assert [j.id for j in a.fine_tuning.jobs.list()] == [job.id]
    assert b.fine_tuning.jobs.list().data == []
    assert [j.id for j in admin.fine_tuning.jobs.list()] == [job.id]
    for attempt in (
        lambda: b.fine_tuning.jobs.retrieve(job.id),
        lambda: b.fine_tuning.jobs.cancel(job.id),
        lambda: b.fine_tuning.jobs.pause(job.id),
        lambda: b.fine_tuning.jobs.list_events(job.id),
        lambda: b.fine_tuning.jobs.checkpoints.list(job.id),
    ):
        with pytest.raises(openai.NotFoundError):
            attempt()
    assert a.files.retrieve(upload.id).id == upload.id  # B's attempts changed nothing
    assert admin.fine_tuning.jobs.cancel(job.id).status == "cancelled"  # the admin key may act on any project
    helpers.wait_for_status(a, job.id, {"cancelled"})


def test_fine_tuned_models_belong_to_their_project_and_base_models_to_all(
    projects_server: EmbeddedServer, tiny_causal_lm: Path, train_file: Path, helpers: Any
) -> None:
    a, b, admin = (_client(projects_server, key) for key in ("key-team-a", "key-team-b", "key-admin"))
    upload = a.files.create(file=train_file.open("rb"), purpose="fine-tune")
    job = a.fine_tuning.jobs.create(
        model=str(tiny_causal_lm), training_file=upload.id, hyperparameters={"n_epochs": 1, "batch_size": 4}
    )
    done = helpers.wait_for_status(a, job.id, {"succeeded", "failed"}, timeout=300)
    assert done.status == "succeeded", done.error
    model = done.fine_tuned_model
    assert model is not None
    [checkpoint] = [c.fine_tuned_model_checkpoint for c in a.fine_tuning.jobs.checkpoints.list(job.id)]
    [result] = done.result_files
    question = [{"role": "user", "content": "the flight was great thanks"}]

    assert model in [m.id for m in a.models.list()] and model in [m.id for m in admin.models.list()]
    assert model not in [m.id for m in b.models.list()]
    assert "smollm2-135m-instruct" in [m.id for m in b.models.list()]  # base models are shared
    for attempt in (
        lambda: b.models.retrieve(model),
        lambda: b.models.retrieve(checkpoint),
        lambda: b.chat.completions.create(model=model, messages=question),
        lambda: b.chat.completions.create(model=checkpoint, messages=question),
        lambda: b.models.delete(model),
        lambda: b.files.retrieve(result),
    ):
        with pytest.raises(openai.NotFoundError):
            attempt()
    assert b.chat.completions.create(model=str(tiny_causal_lm), messages=question, max_tokens=2).choices
    for owner in (a, admin):
        answer = owner.chat.completions.create(model=model, messages=question, temperature=0)
        assert answer.choices[0].message.content in ("positive", "negative")
        assert owner.files.retrieve(result).purpose == "fine-tune-results"
    assert a.models.delete(model).deleted


def test_keys_are_never_logged_nor_echoed(projects_server: EmbeddedServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for key in ("key-team-a", "key-team-a-but-wrong-0123456789"):
        httpx.get(f"{projects_server.base_url}/models", headers={"Authorization": f"Bearer {key}"})
    wrong = httpx.get(
        f"{projects_server.base_url}/files", headers={"Authorization": "Bearer key-team-a-but-wrong-0123456789"}
    )
    assert wrong.status_code == 401 and "key-team-a-but-wrong-0123456789" not in wrong.text
    assert "key-team-a" not in caplog.text


def test_a_key_table_holds_digests_only_and_reads_the_keys_file(keys_file: Path) -> None:
    table = KeyTable.from_settings(Settings(api_keys=KEYS, api_keys_file=keys_file))
    assert "key-team" not in repr(vars(table))
    assert table.caller("key-team-c") is not None and table.caller("key-team-c").project == "teamC"  # type: ignore[union-attr]
    assert table.caller("key-admin") is not None and table.caller("key-admin").project is None  # type: ignore[union-attr]
    assert table.caller("key-team") is None and table.caller("") is None


def test_a_bad_project_name_stops_the_server_naming_the_line_not_the_key(settings: Settings, tmp_path: Path) -> None:
    bad = tmp_path / "bad-keys.txt"
    bad.write_text("good-key:teamA\nsecret-key:team a\n")
    with pytest.raises(ValueError, match=r"bad-keys.txt line 2: project 'team a'") as refused:
        EmbeddedServer(dataclasses.replace(settings, api_keys_file=bad)).start()
    assert "secret-key" not in str(refused.value)
