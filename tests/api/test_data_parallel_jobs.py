"""A job on two devices through the API (two gloo processes on the CPU, started by the embedded worker): the same
events, checkpoints and result file as the job on one device. Slow: each process loads torch and the model."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import openai
import pytest

pytestmark = pytest.mark.slow


def _upload(client: openai.OpenAI, path: Path) -> str:
    return client.files.create(file=path.open("rb"), purpose="fine-tune").id


def _messages(client: openai.OpenAI, job_id: str) -> list[str]:
    events = [e for e in client.fine_tuning.jobs.list_events(job_id, limit=500)][::-1]
    return [e.message for e in events if e.type == "message"]


def test_a_job_on_two_devices_reports_what_a_job_on_one_does(
    client: openai.OpenAI, tiny_causal_lm: Path, tmp_path: Path, helpers: Any
) -> None:
    training = _upload(client, helpers.write_chat_jsonl(tmp_path / "train.jsonl", 16))
    validation = _upload(client, helpers.write_chat_jsonl(tmp_path / "valid.jsonl", 6))
    jobs = {}
    for devices in (1, 2):
        hyperparameters: dict[str, Any] = {
            "n_epochs": 2,
            "batch_size": 4,
            "devices": devices,
            "learning_rate_multiplier": 3,
        }
        job = client.fine_tuning.jobs.create(
            model=str(tiny_causal_lm), training_file=training, validation_file=validation, seed=7,
            hyperparameters=hyperparameters,  # type: ignore[arg-type]
        )  # fmt: skip
        done = helpers.wait_for_status(client, job.id, {"succeeded", "failed"}, timeout=400)
        assert done.status == "succeeded", (done.error, _messages(client, job.id)[-5:])
        assert done.hyperparameters.model_dump()["devices"] == devices
        jobs[devices] = done
    one, two = (_messages(client, jobs[n].id) for n in (1, 2))
    assert any("on 2 data-parallel processes on cpu)" in m for m in two)

    def same(message: str, job: Any) -> str:
        """A message with what differs by design taken out: ids, model names and the device words."""
        message = message.replace(job.id, "JOB").replace(job.fine_tuned_model, "MODEL")
        return re.sub(r" on 2 data-parallel processes on cpu\)", " on cpu)", message)

    assert [same(m, jobs[1]) for m in one] == [same(m, jobs[2]) for m in two]
    steps = {n: [c.step_number for c in client.fine_tuning.jobs.checkpoints.list(jobs[n].id)] for n in (1, 2)}
    assert steps[1] == steps[2] == [8, 4]
    metrics = {
        n: [e.data for e in client.fine_tuning.jobs.list_events(jobs[n].id, limit=500) if e.type == "metrics"]
        for n in (1, 2)
    }
    assert [m["step"] for m in metrics[1]] == [m["step"] for m in metrics[2]]
    for a, b in zip(metrics[1], metrics[2], strict=True):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=5e-3)
    assert jobs[1].trained_tokens == jobs[2].trained_tokens
