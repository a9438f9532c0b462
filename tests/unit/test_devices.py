"""Choosing the device: `auto`, a device that is not there (with the fix in the message), and where the choice is
shown: `/health`, `/version`, `localft serve`'s first line, a job's events."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import httpx
import pytest
import torch
from click.testing import CliRunner

from localft import devices, ids
from localft.api.app import create_app
from localft.api.server import EmbeddedServer
from localft.cli import main
from localft.devices import DeviceError, describe, resolve_device
from localft.jobs.files import FileStorage
from localft.jobs.intake import validate_job
from localft.jobs.schema import JobRecord
from localft.jobs.store import Store
from localft.jobs.worker import Worker
from localft.settings import ALL_DEVICES, Settings

no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="checks what a machine without a GPU says")


@no_gpu
def test_auto_is_the_cpu_without_a_gpu() -> None:
    expected = "mps" if torch.backends.mps.is_available() else "cpu"
    assert resolve_device("auto") == expected
    assert resolve_device("cpu") == "cpu" and resolve_device(" CPU ") == "cpu"


@no_gpu
def test_a_gpu_asked_of_a_cpu_build_names_the_cause_and_the_fix() -> None:
    with pytest.raises(DeviceError) as raised:
        resolve_device("cuda")
    message = raised.value.message
    assert "LOCALFT_DEVICE=cuda asks for a GPU" in message
    assert f"torch {torch.__version__} was built without CUDA" in message or "sees no GPU" in message
    assert "TORCH_INDEX" in message and "LOCALFT_DEVICE=auto" in message
    assert raised.value.code == "device_unavailable"
    with pytest.raises(DeviceError, match="asks for a GPU"):
        resolve_device("cuda:1")


def test_a_device_name_that_is_no_device_is_refused() -> None:
    with pytest.raises(DeviceError, match="use auto, cpu, cuda, cuda:N or mps"):
        resolve_device("gpu")


def test_the_cpu_report() -> None:
    report = describe("cpu")
    assert report.device == "cpu" and report.torch == torch.__version__
    assert report.precision == ("bf16" if devices.native_bf16("cpu") else "fp32")
    assert report.summary().startswith(f"cpu ({report.name}") and report.summary().endswith(report.precision)


def test_health_and_version_say_what_the_server_computes_on(settings: Settings) -> None:
    with EmbeddedServer(dataclasses.replace(settings, embedded_worker=False)) as server:
        health = httpx.get(f"{server.root_url}/health").json()
        version = httpx.get(f"{server.root_url}/version").json()
    expected = describe(settings.device).to_dict()
    assert health["compute"] == expected and version["compute"] == expected
    assert health["executor"] == "embedded" and version["version"] == health["version"]


@no_gpu
def test_a_server_asked_for_a_missing_gpu_does_not_start(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(DeviceError, match="asks for a GPU"):
        create_app(dataclasses.replace(settings, device="cuda"))
    started: list[Settings] = []
    monkeypatch.setattr("localft.api.server.serve", lambda s, **_kw: started.append(s))
    monkeypatch.setenv("LOCALFT_DEVICE", "cuda")
    result = CliRunner().invoke(main, ["serve"])
    assert result.exit_code == 1 and not started
    assert "asks for a GPU" in result.output and "Traceback" not in result.output


def test_serves_first_line_names_the_device_and_precision(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[Settings] = []
    monkeypatch.setattr("localft.api.server.serve", lambda s, **_kw: started.append(s))
    result = CliRunner().invoke(main, ["serve", "--port", "8123"])
    assert result.exit_code == 0 and len(started) == 1
    assert f"computing on {describe('auto').summary()};" in result.output


@no_gpu
def test_a_job_asking_a_cpu_build_for_a_gpu_fails_with_the_fix(settings: Settings, tiny_causal_lm: object) -> None:
    store = Store.open(settings.db_url)
    storage = FileStorage(store, settings.files_dir)
    line = {"messages": [{"role": "user", "content": "the flight"}, {"role": "assistant", "content": "positive"}]}
    upload = storage.save_bytes((json.dumps(line) + "\n").encode() * 10, filename="t.jsonl", purpose="fine-tune")
    job = JobRecord(
        id=ids.job_id(), created_at=1, model=str(tiny_causal_lm), base_model=str(tiny_causal_lm),
        training_file=upload.id, validation_file=None, hyperparameters={}, method={"type": "supervised"},
        suffix=None, seed=0, metadata=None, organization_id="org", status="validating_files", error=None,
        model_name="ft:tiny:org::abcdefgh", fine_tuned_model=None, finished_at=None, trained_tokens=None,
        estimated_finish=None,
    )  # fmt: skip
    store.add_job(job, ["Created fine-tuning job"])
    assert validate_job(storage, job)
    Worker(dataclasses.replace(settings, device="cuda"), store, poll_interval=0.01).run_once()
    failed = store.get_job(job.id)
    store.close()
    assert failed.status == "failed" and failed.error is not None
    assert failed.error["code"] == "device_unavailable"
    assert "asks for a GPU" in failed.error["message"] and "AssertionError" not in failed.error["message"]


def test_how_many_processes_a_job_trains_in(tmp_path: Path) -> None:
    from localft.errors import InvalidRequestError
    from localft.training import Hyperparameters, TrainSpec
    from localft.training.distributed import processes_for

    def spec(devices: int | str, default: int = 1) -> TrainSpec:
        hp = Hyperparameters(devices=devices)  # type: ignore[arg-type]
        return TrainSpec("m", tmp_path / "t.jsonl", tmp_path, hyperparameters=hp, devices=default)

    assert processes_for(spec("auto"), "cpu") == 1
    assert processes_for(spec("auto", default=3), "cpu") == 3  # the worker's default
    assert processes_for(spec(2, default=3), "cpu") == 2  # the job's own wins
    assert processes_for(spec("auto", default=ALL_DEVICES), "cpu") == 1  # `all` GPUs of a CPU
    if not torch.cuda.is_available():
        with pytest.raises(InvalidRequestError) as refused:
            processes_for(spec(2), "cuda")
        assert refused.value.param == "hyperparameters.devices"
        assert "asks for 2 devices, but this worker sees 0 GPU(s)" in refused.value.message
