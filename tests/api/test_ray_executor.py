"""`localft serve --executor ray` against a real Ray head started here (`ray start --head`, loopback only, this
machine's CPUs): jobs run as Ray tasks that write to the server's database and data folder, a task killed mid-job
resumes from its newest checkpoint in a new task, and a job on two devices trains through Ray Train. Slow: Ray's
processes and each task's worker start in seconds to tens of seconds on two busy cores."""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from localft import ids
from localft.api.server import EmbeddedServer
from localft.jobs.ray_executor import MARKER, DataFolderMissing, check_data_folder, data_folder_id, resources_for
from localft.jobs.schema import JobRecord
from localft.jobs.store import Store
from localft.settings import Settings

RAY = Path(sys.executable).parent / "ray"
LOOPBACK_ONLY = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}
"""Ray's single-machine mode: every Ray process binds and talks to 127.0.0.1, never the machine's other addresses."""


def _job(base_model: str, hyperparameters: dict[str, Any]) -> JobRecord:
    return JobRecord(
        id=ids.job_id(), created_at=1, model=base_model, base_model=base_model, training_file="file-x",
        validation_file=None, hyperparameters=hyperparameters, method={}, suffix=None, seed=0, metadata=None,
        organization_id="org", status="queued", error=None, model_name="ft:x", fine_tuned_model=None,
        finished_at=None, trained_tokens=None, estimated_finish=None,
    )  # fmt: skip


def test_a_job_asks_for_a_gpu_where_the_cluster_has_them_else_cpus(settings: Settings) -> None:
    gpus = {"CPU": 64.0, "GPU": 8.0}
    processes, request = resources_for(_job("smollm2-135m-instruct", {}), settings, gpus)
    assert processes == 1 and (request["num_gpus"], request["num_cpus"]) == (1, 1)
    assert request["memory"] == 2 * 2**30 + 135_000_000 * 6  # by the model's size
    assert resources_for(_job("auto", {}), settings, gpus)[1] == request  # model selection: the default LLM's
    processes, request = resources_for(
        _job("minilm-l6", {"devices": 4}), dataclasses.replace(settings, job_cpus=3), {"CPU": 8.0}
    )
    assert processes == 4 and request == {"num_cpus": 3, "memory": 2 * 2**30 + int(22.7e6 * 16)}
    on_cpu = dataclasses.replace(settings, device="cpu", devices=2)
    assert (
        resources_for(_job("minilm-l6", {}), on_cpu, gpus)[0] == 2
        and "num_gpus" not in resources_for(_job("minilm-l6", {}), on_cpu, gpus)[1]
    )


def test_a_node_without_the_data_folder_is_told_how_to_fix_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    folder = data_folder_id(home)
    assert (home / MARKER).read_text().strip() == folder == data_folder_id(home)  # written once
    assert check_data_folder(home, folder, node="10.1.2.3") == "10.1.2.3"
    with pytest.raises(DataFolderMissing) as missing:
        check_data_folder(tmp_path / "elsewhere", folder, node="10.1.2.3")
    assert "Ray node 10.1.2.3 does not see localft's data folder" in missing.value.message
    assert "mount the shared data folder at the same path on every node" in missing.value.message


# --- against a real Ray head ---------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def ray_head(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A Ray head on 127.0.0.1 with this machine's CPUs, started for the test and stopped after it (every process
    of its session, by id)."""
    import psutil

    for name, value in LOOPBACK_ONLY.items():
        monkeypatch.setenv(name, value)
    ray = pytest.importorskip("ray")
    # Read when Ray is imported: set here too, where an earlier test imported it.
    monkeypatch.setattr(ray._private.ray_constants, "ENABLE_RAY_CLUSTER", False)
    port = _free_port()
    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # Ray's socket paths must stay short
    head = subprocess.Popen(
        [
            str(RAY), "start", "--head", "--block", f"--port={port}", "--node-ip-address=127.0.0.1",
            f"--num-cpus={os.cpu_count()}", "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp}",
        ],
        env={**os.environ, **LOOPBACK_ONLY},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert head.poll() is None and time.monotonic() < deadline, "the Ray head did not start"
            time.sleep(0.5)
        yield address
    finally:
        if ray.is_initialized():
            ray.shutdown()
        session = head.pid
        head.send_signal(signal.SIGTERM)
        try:
            head.wait(60)
        except subprocess.TimeoutExpired:
            head.kill()
        for process in psutil.process_iter():
            try:
                if os.getsid(process.pid) == session:
                    process.kill()
            except (ProcessLookupError, psutil.Error):
                pass
        shutil.rmtree(temp, ignore_errors=True)


def _upload(client: openai.OpenAI, path: Path) -> str:
    return client.files.create(file=path.open("rb"), purpose="fine-tune").id


def _events(client: openai.OpenAI, job_id: str) -> list[str]:
    return [e.message for e in client.fine_tuning.jobs.list_events(job_id, limit=500)][::-1]


@pytest.mark.slow
@pytest.mark.timeout(900)  # a cluster that cannot be reached would otherwise hold the server's shutdown
def test_jobs_run_on_the_cluster_and_a_killed_task_resumes_from_its_checkpoint(
    ray_head: str, settings: Settings, postgres_url: str, tiny_causal_lm: Path, tiny_encoder: Path, tmp_path: Path,
    helpers: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    import psutil

    cluster = dataclasses.replace(settings, executor="ray", database_url=postgres_url)
    monkeypatch.setenv("RAY_ADDRESS", ray_head)
    with EmbeddedServer(cluster, lease_seconds=3.0) as server:
        health = httpx.get(f"{server.root_url}/health").json()
        assert (health["executor"], health["embedded_worker"]) == ("ray", False)
        client = openai.OpenAI(base_url=server.base_url, api_key="local", max_retries=0)
        training = _upload(client, helpers.write_chat_jsonl(tmp_path / "train.jsonl", 40))
        job = client.fine_tuning.jobs.create(
            model=str(tiny_causal_lm), training_file=training, hyperparameters={"n_epochs": 6, "batch_size": 2}
        )
        # Kill the task's worker process once the job has a checkpoint.
        deadline = time.monotonic() + 300
        while not client.fine_tuning.jobs.checkpoints.list(job.id).data:
            assert time.monotonic() < deadline, _events(client, job.id)
            assert client.fine_tuning.jobs.retrieve(job.id).status in ("queued", "running"), _events(client, job.id)
            time.sleep(0.2)
        running = Store.open(postgres_url)
        worker_id = running.get_job(job.id).worker_id or ""
        running.close()
        host, pid, token = worker_id.split(":")
        assert host == socket.gethostname() and token.startswith("ray")
        task = psutil.Process(int(pid))
        assert task.pid != os.getpid() and "ray::" in " ".join(task.cmdline())  # a Ray worker, not this process
        task.kill()
        done = helpers.wait_for_status(client, job.id, {"succeeded", "failed"}, timeout=400)
        events = _events(client, job.id)
        assert done.status == "succeeded", (done.error, events)
        assert any(m.startswith("Submitted to the Ray cluster: a Ray task with cpus 1") for m in events)
        assert any("The Ray task running this job was lost (WorkerCrashedError)" in m for m in events), events
        assert any(m.startswith("Resuming fine-tuning job from checkpoint at step") for m in events), events
        assert sum(m.startswith("Submitted to the Ray cluster") for m in events) == 2
        answer = client.chat.completions.create(
            model=done.fine_tuned_model or "", messages=[{"role": "user", "content": "my bag was lost again"}]
        )
        assert answer.choices[0].message.content in ("positive", "negative")

        # Two devices: two Ray Train workers (gloo on the CPU), the first reporting through the job's task.
        encoder_job = client.fine_tuning.jobs.create(
            model=str(tiny_encoder), training_file=training,
            hyperparameters={"n_epochs": 2, "batch_size": 4, "devices": 2},  # type: ignore[typeddict-unknown-key]
        )  # fmt: skip
        done = helpers.wait_for_status(client, encoder_job.id, {"succeeded", "failed"}, timeout=400)
        events = _events(client, encoder_job.id)
        assert done.status == "succeeded", (done.error, events)
        assert any(m.startswith("Submitted to the Ray cluster: 2 Ray Train workers, each with") for m in events)
        assert any("on 2 data-parallel processes on cpu" in m for m in events), events
        assert [c.step_number for c in client.fine_tuning.jobs.checkpoints.list(encoder_job.id).data] == [20, 10]
        assert done.hyperparameters.model_dump()["devices"] == 2
