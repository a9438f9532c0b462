"""API test helpers: openai clients on live servers, and small chat JSONL files written per test."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from openai.types.fine_tuning import FineTuningJob

from localft.api.server import EmbeddedServer
from localft.settings import Settings

LABELS = ("positive", "negative")


def write_chat_jsonl(path: Path, n: int, *, labels: tuple[str, ...] = LABELS) -> Path:
    """`n` two-label sentiment examples in OpenAI's chat format."""
    texts = {"positive": "the flight was great thanks", "negative": "my bag was lost again"}
    lines = []
    for i in range(n):
        label = labels[i % len(labels)]
        messages = [
            {"role": "system", "content": "Classify the sentiment of this tweet."},
            {"role": "user", "content": f"{texts.get(label, label)} {i}"},
            {"role": "assistant", "content": label},
        ]
        lines.append(json.dumps({"messages": messages}))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def client(live_server: EmbeddedServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=live_server.base_url, api_key="unused-locally", max_retries=0)


@pytest.fixture
def idle_server(settings: Settings) -> Iterator[EmbeddedServer]:
    """A server without its embedded worker: jobs stay queued, so state changes can be tested deterministically."""
    with EmbeddedServer(dataclasses.replace(settings, embedded_worker=False)) as server:
        yield server


@pytest.fixture
def idle_client(idle_server: EmbeddedServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=idle_server.base_url, api_key="unused-locally", max_retries=0)


def wait_for_status(client: openai.OpenAI, job_id: str, statuses: set[str], timeout: float = 60.0) -> FineTuningJob:
    """Poll a job until its status is one of `statuses` (fails the test on timeout, showing the newest events)."""
    deadline = time.monotonic() + timeout
    while True:
        job = client.fine_tuning.jobs.retrieve(job_id)
        if job.status in statuses:
            return job
        if time.monotonic() > deadline:
            events = [e.message for e in client.fine_tuning.jobs.list_events(job_id, limit=10)]
            pytest.fail(f"job {job_id} is {job.status}, not {statuses}; events: {events}")
        time.sleep(0.05)


class Helpers:
    """Functions tests need, as a fixture (test folders are not importable packages)."""

    write_chat_jsonl = staticmethod(write_chat_jsonl)
    wait_for_status = staticmethod(wait_for_status)


@pytest.fixture
def helpers() -> type[Helpers]:
    return Helpers


@pytest.fixture
def train_file(tmp_path: Path) -> Path:
    return write_chat_jsonl(tmp_path / "train.jsonl", 12)
