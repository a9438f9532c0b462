"""The dashboard shows which worker runs a job, and the live workers on the jobs page."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

import openai
import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from localft.api.server import EmbeddedServer

pytestmark = pytest.mark.browser


def test_jobs_page_lists_live_workers_and_the_job_page_its_worker(
    page: Page, live_server: EmbeddedServer, tiny_causal_lm: Path, tmp_path: Path
) -> None:
    client = openai.OpenAI(base_url=live_server.base_url, api_key="unused", max_retries=0)
    lines = [
        json.dumps({"messages": [{"role": "user", "content": f"{label} {i}"}, {"role": "assistant", "content": label}]})
        for i in range(6)
        for label in ("positive", "negative")
    ]
    data = tmp_path / "train.jsonl"
    data.write_text("\n".join(lines) + "\n")
    training = client.files.create(file=data.open("rb"), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(
        model=str(tiny_causal_lm), training_file=training.id, hyperparameters={"n_epochs": 1, "batch_size": 4}
    )
    deadline = time.monotonic() + 300
    while (done := client.fine_tuning.jobs.retrieve(job.id)).status not in ("succeeded", "failed"):
        assert time.monotonic() < deadline, done.status
        time.sleep(0.1)
    worker_id = (done.model_extra or {})["worker_id"]
    [live] = client.get("/workers", cast_to=object)["data"]  # type: ignore[index]
    assert live["id"] == worker_id

    page.goto(f"{live_server.root_url}/#/jobs")
    page.locator("#workers tbody tr").first.wait_for()
    assert worker_id in page.locator("#workers").inner_text()
    page.goto(f"{live_server.root_url}/#/jobs/{job.id}")
    page.locator("#job-worker").wait_for()
    assert page.locator("#job-worker").inner_text() == worker_id
