"""The resource verbs (`files`, `jobs`, `models`) against a live localft server: tables, `--json`, exit codes."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import openai
import pytest
from click.testing import CliRunner, Result

from localft.api.server import EmbeddedServer
from localft.cli import main
from localft.cli.render import EXIT_API_ERROR

TWEETS = [
    ("@united thanks, the crew was lovely", "positive"),
    ("@united my bag is lost again", "negative"),
    ("@united what time does boarding start", "neutral"),
    ("@delta great flight, landed early", "positive"),
    ("@delta two hours on the tarmac, awful", "negative"),
    ("@delta is there wifi on this route", "neutral"),
    ("@jetblue love the snacks", "positive"),
    ("@jetblue cancelled without notice", "negative"),
    ("@jetblue which terminal for Boston", "neutral"),
    ("@united best service in years", "positive"),
    ("@united rude agent at the gate", "negative"),
    ("@united can I change my seat online", "neutral"),
]


def write_chat(path: Path, rows: list[tuple[str, str]] = TWEETS) -> Path:
    with path.open("w", encoding="utf-8") as fh:
        for text, label in rows:
            messages = [{"role": "user", "content": text}, {"role": "assistant", "content": label}]
            fh.write(json.dumps({"messages": messages}) + "\n")
    return path


def run(server: EmbeddedServer, *args: str) -> Result:
    return CliRunner().invoke(main, [*args, "--base-url", server.base_url])


def run_json(server: EmbeddedServer, *args: str) -> Any:
    result = run(server, *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_files_round_trip(live_server: EmbeddedServer, tmp_path: Path) -> None:
    data = write_chat(tmp_path / "train.jsonl")
    uploaded = run(live_server, "files", "upload", str(data))
    assert uploaded.exit_code == 0, uploaded.output
    file_id = uploaded.output.strip()
    assert file_id.startswith("file-")

    listed = run(live_server, "files", "list")
    assert listed.exit_code == 0
    header, *rows = listed.output.splitlines()
    assert header.split()[:3] == ["ID", "FILENAME", "PURPOSE"]
    assert any(row.startswith(file_id) and "train.jsonl" in row for row in rows)

    as_json = run_json(live_server, "files", "list", "--purpose", "fine-tune")
    assert [f["id"] for f in as_json] == [file_id]
    assert as_json[0]["bytes"] == data.stat().st_size

    shown = run_json(live_server, "files", "show", file_id)
    assert shown["filename"] == "train.jsonl" and shown["object"] == "file"

    out = tmp_path / "copy.jsonl"
    downloaded = run(live_server, "files", "download", file_id, "-o", str(out))
    assert downloaded.exit_code == 0, downloaded.output
    assert out.read_bytes() == data.read_bytes()

    removed = run(live_server, "files", "rm", file_id)
    assert removed.exit_code == 0 and f"Deleted {file_id}" in removed.output
    assert run_json(live_server, "files", "list") == []


def test_server_errors_are_one_line_with_exit_code(live_server: EmbeddedServer) -> None:
    missing = run(live_server, "files", "show", "file-doesnotexist")
    assert missing.exit_code == EXIT_API_ERROR
    assert "file-doesnotexist" in missing.output and "[HTTP 404]" in missing.output
    assert "Traceback" not in missing.output

    bad_job = run(live_server, "jobs", "create", "--model", "smollm2-135m-instruct", "--training-file", "file-nope")
    assert bad_job.exit_code == EXIT_API_ERROR
    assert "[HTTP 400]" in bad_job.output and "training_file" in bad_job.output


def test_models_list_show_and_rm_errors(live_server: EmbeddedServer) -> None:
    models = run_json(live_server, "models", "list")
    ids = [m["id"] for m in models]
    assert "smollm2-135m-instruct" in ids
    table = run(live_server, "models", "list")
    assert table.exit_code == 0 and table.output.splitlines()[0].split() == ["ID", "OWNED_BY", "CREATED"]
    shown = run_json(live_server, "models", "show", "smollm2-135m-instruct")
    assert shown["object"] == "model"
    missing = run(live_server, "models", "rm", "ft:smollm2-135m-instruct:localft::nothere1")
    assert missing.exit_code == EXIT_API_ERROR and "[HTTP 404]" in missing.output


def test_job_verbs_on_a_job_with_invalid_data(live_server: EmbeddedServer, tmp_path: Path) -> None:
    """Too few examples: the job fails with OpenAI's code; `watch` exits 4 with the server's message."""
    data = write_chat(tmp_path / "small.jsonl", TWEETS[:5])
    file_id = run(live_server, "files", "upload", str(data)).output.strip()
    created = run_json(
        live_server, "jobs", "create", "--model", "smollm2-135m-instruct", "--training-file", file_id,
        "--max-length", "1024",
    )  # fmt: skip
    job_id = created["id"]
    assert created["object"] == "fine_tuning.job" and created["hyperparameters"]["max_length"] == 1024

    watched = run(live_server, "jobs", "watch", job_id)
    assert watched.exit_code == 4, watched.output
    assert "at least 10 examples" in watched.output

    shown = run_json(live_server, "jobs", "show", job_id)
    assert shown["status"] == "failed" and shown["error"]["code"] == "invalid_n_examples"
    listed = run_json(live_server, "jobs", "list")
    assert [j["id"] for j in listed] == [job_id]
    events = run_json(live_server, "jobs", "events", job_id)
    messages = [e["message"] for e in events]
    assert messages[0].startswith("Created fine-tuning job")  # oldest first in the CLI
    table = run(live_server, "jobs", "events", job_id)
    assert table.output.splitlines()[0].split() == ["CREATED_AT", "LEVEL", "TYPE", "MESSAGE"]
    # Tables show the API's Unix timestamps as UTC dates; the JSON keeps the numbers.
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d  ", table.output.splitlines()[1])
    assert isinstance(events[0]["created_at"], int)
    assert run_json(live_server, "jobs", "checkpoints", job_id) == []
    cancel = run(live_server, "jobs", "cancel", job_id)
    assert cancel.exit_code == EXIT_API_ERROR and "[HTTP 400]" in cancel.output


@pytest.mark.parametrize("verb", ["pause", "cancel"])
def test_control_verbs_on_a_new_job(
    live_server: EmbeddedServer, tiny_causal_lm: Path, tmp_path: Path, verb: str
) -> None:
    client = openai.OpenAI(base_url=live_server.base_url, api_key="x")
    file_id = client.files.create(file=write_chat(tmp_path / "t.jsonl"), purpose="fine-tune").id
    hyperparameters = {"n_epochs": 50, "batch_size": 1}  # long enough to still be running when asked
    job = client.fine_tuning.jobs.create(
        model=str(tiny_causal_lm), training_file=file_id, hyperparameters=hyperparameters
    )
    result = run(live_server, "jobs", verb, job.id)
    assert result.exit_code == 0, result.output
    status = client.fine_tuning.jobs.retrieve(job.id).status
    assert status == {"pause": "paused", "cancel": "cancelled"}[verb]
    assert result.output.strip() == f"{job.id}: {status}"
