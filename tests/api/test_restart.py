"""Crash safety and separate workers, with real processes: `localft serve` and `localft worker` as subprocesses.

A server killed with SIGKILL mid-job comes back and resumes the job from its last checkpoint; nothing recorded
before the kill (files, events, checkpoints) is lost. Separate `localft worker` processes share the queue and never
run the same job twice.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from localft.api.server import EmbeddedServer
from localft.jobs.store import Store
from localft.settings import Settings


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _env(home: Path, port: int) -> dict[str, str]:
    return {
        **os.environ,
        "LOCALFT_HOME": str(home),
        "LOCALFT_PORT": str(port),
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
    }


def _localft(*args: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "localft", *args], env=env, stdout=out, stderr=out)


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    pytest.fail(f"server not healthy after {timeout}s:\n{log.read_text()[-3000:]}")


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _events(client: openai.OpenAI, job_id: str) -> list[tuple[str, str]]:
    return [(e.id, e.message) for e in client.fine_tuning.jobs.list_events(job_id, limit=100)][::-1]


def _wait_for_event(client: openai.OpenAI, job_id: str, prefix: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(message.startswith(prefix) for _, message in _events(client, job_id)):
            return
        time.sleep(0.05)
    pytest.fail(f"no {prefix!r} event: {_events(client, job_id)[-5:]}")


def test_server_killed_mid_job_resumes_from_its_checkpoint(
    tmp_path: Path, tiny_causal_lm: Path, processes: list[subprocess.Popen[bytes]], helpers: Any
) -> None:
    home, port, log = tmp_path / "home", _free_port(), tmp_path / "serve.log"
    url = f"http://127.0.0.1:{port}"
    env = _env(home, port)
    server = _localft("serve", "--lease-seconds", "3", "--log-level", "warning", env=env, log=log)
    processes.append(server)
    _wait_healthy(url, server, log)
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0)
    training = client.files.create(
        file=helpers.write_chat_jsonl(tmp_path / "train.jsonl", 12).open("rb"), purpose="fine-tune"
    )
    job = client.fine_tuning.jobs.create(
        model=str(tiny_causal_lm), training_file=training.id, hyperparameters={"n_epochs": 3, "batch_size": 4}
    )
    _wait_for_event(client, job.id, "Checkpoint created at step")
    before_events = _events(client, job.id)
    before_checkpoints = {c.id for c in client.fine_tuning.jobs.checkpoints.list(job.id)}
    server.kill()  # SIGKILL: no shutdown hook runs
    server.wait()
    assert client is not None and before_checkpoints

    restarted = _localft("serve", "--lease-seconds", "3", "--log-level", "warning", env=env, log=log)
    processes.append(restarted)
    _wait_healthy(url, restarted, log)
    done = helpers.wait_for_status(client, job.id, {"succeeded", "failed"}, timeout=300)
    assert done.status == "succeeded", done.error
    after = _events(client, job.id)
    assert after[: len(before_events)] == before_events  # every event recorded before the kill is still there
    messages = [message for _, message in after[len(before_events) :]]
    takeover = next(i for i, m in enumerate(messages) if "stopped while running this job" in m)
    assert messages[takeover + 1].startswith("Resuming fine-tuning job from checkpoint at step")
    assert messages[-1] == "The job has successfully completed"
    assert [f.id for f in client.files.list(purpose="fine-tune")] == [training.id]
    assert len(client.files.list(purpose="fine-tune-results").data) == 1
    steps = [c.step_number for c in client.fine_tuning.jobs.checkpoints.list(job.id)]
    assert steps == [9, 6, 3]
    assert done.fine_tuned_model is not None
    answer = client.chat.completions.create(
        model=done.fine_tuned_model, messages=[{"role": "user", "content": "the flight was great thanks"}]
    )
    assert answer.choices[0].message.content in ("positive", "negative")


def test_separate_worker_processes_share_the_queue(
    settings: Settings, tmp_path: Path, tiny_causal_lm: Path, processes: list[subprocess.Popen[bytes]], helpers: Any
) -> None:
    api_only = dataclasses.replace(settings, embedded_worker=False)
    with EmbeddedServer(api_only) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0)
        training = client.files.create(
            file=helpers.write_chat_jsonl(tmp_path / "train.jsonl", 12).open("rb"), purpose="fine-tune"
        )
        jobs = [
            client.fine_tuning.jobs.create(
                model=str(tiny_causal_lm), training_file=training.id, hyperparameters={"n_epochs": 1, "batch_size": 4}
            )
            for _ in range(2)
        ]
        env = _env(settings.home, 0)
        for n in range(2):
            processes.append(
                _localft(
                    "worker", "--lease-seconds", "3", "--poll-interval", "0.2", env=env, log=tmp_path / f"w{n}.log"
                )
            )
        for job in jobs:
            done = helpers.wait_for_status(client, job.id, {"succeeded", "failed"}, timeout=300)
            assert done.status == "succeeded", done.error
        store = Store.open(settings.db_url)
        try:
            records = [store.get_job(job.id) for job in jobs]
        finally:
            store.close()
        assert all(r.attempts == 1 for r in records)  # each job claimed exactly once
        worker_pids = {r.worker_id.split(":")[1] for r in records if r.worker_id}
        assert worker_pids <= {str(p.pid) for p in processes}
        assert len({r.fine_tuned_model for r in records}) == 2


def test_serve_warns_when_exposed_without_keys(tmp_path: Path, processes: list[subprocess.Popen[bytes]]) -> None:
    port, log = _free_port(), tmp_path / "serve.log"
    server = _localft("serve", "--host", "0.0.0.0", "--no-worker", env=_env(tmp_path / "home", port), log=log)
    processes.append(server)
    _wait_healthy(f"http://127.0.0.1:{port}", server, log)
    text = log.read_text()
    assert "WARNING: binding to 0.0.0.0 without API keys" in text
    assert "no embedded worker" in text and "sqlite database" in text


def test_a_worker_that_does_not_see_the_servers_data_folder_refuses_to_start(
    settings: Settings, tmp_path: Path, train_file: Path, helpers: Any
) -> None:
    api_only = dataclasses.replace(settings, embedded_worker=False)
    with EmbeddedServer(api_only) as server:  # marks its data folder in the database
        client = openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0)
        upload = client.files.create(file=train_file.open("rb"), purpose="fine-tune")
        job = client.fine_tuning.jobs.create(model="smollm2-135m-instruct", training_file=upload.id)
        helpers.wait_for_status(client, job.id, {"queued"})
        elsewhere = {**_env(tmp_path / "not-mounted", 0), "LOCALFT_DATABASE_URL": settings.db_url}
        refused = subprocess.run(
            [sys.executable, "-m", "localft", "worker", "--once"], env=elsewhere, capture_output=True, text=True
        )
        assert refused.returncode == 2, refused.stderr
        assert "does not see the data folder of the database" in refused.stderr
        assert "not-mounted has no .localft-data-id" in refused.stderr
        assert client.fine_tuning.jobs.retrieve(job.id).status == "queued"  # no job was claimed and failed
