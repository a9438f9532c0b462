"""The whole dashboard journey in headless Chromium, on a live server that really trains (tiny encoder, CPU):
upload -> create job -> watch the chart move (pause, resume) -> job succeeds -> playground answer -> delete.

Each step is checked against the API through the official `openai` client, and screenshots are kept in
`test-artifacts/browser/`.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import openai
import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from localft.api.server import EmbeddedServer

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(300)]

SYSTEM = "Classify the sentiment of the airline tweet: positive, negative or neutral."
LABELS = ["negative", "neutral", "positive"]
N_TRAIN_PER_LABEL = 8
N_VALID_PER_LABEL = 3
N_EPOCHS, BATCH_SIZE = 2, 1
TOTAL_STEPS = N_EPOCHS * N_TRAIN_PER_LABEL * len(LABELS) // BATCH_SIZE


def _pause_early(client: openai.OpenAI, job_id: str, timeout: float = 60) -> None:
    """Pause the job the moment validation lets it be paused (only queued or running jobs pause).

    Asked in a tight loop, the pause lands while the job waits in the queue: a tiny model's whole run can take
    less time than the worker's heartbeat, which is when a running job notices a pause.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.fine_tuning.jobs.pause(job_id)
            return
        except openai.BadRequestError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def airline_files(datasets: Path, folder: Path) -> tuple[Path, Path]:
    """Balanced chat JSONL train/validation files from the first tweets of each class of the shared dataset."""
    per_label: dict[str, list[str]] = {label: [] for label in LABELS}
    wanted = N_TRAIN_PER_LABEL + N_VALID_PER_LABEL
    with (datasets / "twitter_airline_sentiment" / "Tweets.csv").open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            texts = per_label[row["airline_sentiment"]]
            if len(texts) < wanted:
                texts.append(row["text"])
    paths = []
    for name, part in (("train", slice(0, N_TRAIN_PER_LABEL)), ("valid", slice(N_TRAIN_PER_LABEL, wanted))):
        lines = [
            json.dumps(
                {
                    "messages": [
                        {"role": "system", "content": SYSTEM},
                        {"role": "user", "content": text},
                        {"role": "assistant", "content": label},
                    ]
                }
            )
            for label in LABELS
            for text in per_label[label][part]
        ]
        path = folder / f"airline_{name}.jsonl"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        paths.append(path)
    return paths[0], paths[1]


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def upload(page: Page, path: Path) -> str:
    page.set_input_files("#file-input", str(path))
    page.click("#upload-form button[type=submit]")
    notice = page.get_by_role("status").filter(has_text=f"Uploaded {path.name}")
    return notice.inner_text().rsplit(" as ", 1)[1].rstrip(".")


def chart_points(page: Page) -> int:
    return int(page.locator("#loss-chart").get_attribute("data-points") or 0)


def test_upload_train_watch_chat_delete(
    page: Page, live_server: EmbeddedServer, tiny_encoder: Path, datasets: Path, tmp_path: Path, artifacts: Path
) -> None:
    client = openai.OpenAI(base_url=live_server.base_url, api_key="unused", max_retries=0)
    train_path, valid_path = airline_files(datasets, tmp_path)

    # 1. Upload both files on the Files page.
    page.goto(live_server.root_url + "/#/files")
    train_id = upload(page, train_path)
    valid_id = upload(page, valid_path)
    assert {train_id, valid_id} <= {f.id for f in client.files.list(purpose="fine-tune")}

    # 2. Create the job from the form, with the validation report shown first.
    page.goto(live_server.root_url + "/#/jobs/new")
    page.select_option("#training-file", train_id)
    page.locator('#validation-report[data-ok="true"]').wait_for()
    assert f"{3 * N_TRAIN_PER_LABEL} examples" in page.locator("#validation-report").inner_text()
    page.select_option("#validation-file", valid_id)
    page.fill("#base-model", str(tiny_encoder))
    page.fill("#suffix", "e2e")
    page.fill("[name=n_epochs]", str(N_EPOCHS))
    page.fill("[name=batch_size]", str(BATCH_SIZE))
    page.fill("[name=max_length]", "48")
    page.click("#create-job")
    page.wait_for_url("**/#/jobs/ftjob-*")
    job_id = page.url.rsplit("/", 1)[1]
    job = client.fine_tuning.jobs.retrieve(job_id)
    assert job.training_file == train_id and job.validation_file == valid_id and job.user_provided_suffix == "e2e"
    assert job.hyperparameters.model_dump()["max_length"] == 48

    # 3. Watch the chart move. The job is paused through the API as soon as validation lets it be (the page polls
    # every 2 s, too slow to catch a tiny model's steps: on an idle machine the whole run takes a few seconds),
    # the chart holds still, then the page's Resume button restarts it and the same chart, never reloaded, grows.
    badge = page.locator("h1 .badge")
    _pause_early(client, job_id)
    wait_until(lambda: badge.get_attribute("data-status") == "paused", 30, "paused on the page")
    time.sleep(2.5)  # one more poll: nothing moves while paused
    held = chart_points(page)
    assert held < TOTAL_STEPS
    page.screenshot(path=str(artifacts / "job-paused.png"), full_page=True)
    page.click("#resume")
    wait_until(lambda: badge.get_attribute("data-status") in ("queued", "running"), 30, "resumed on the page")
    wait_until(lambda: chart_points(page) > held, 120, "the chart to grow")
    wait_until(lambda: badge.get_attribute("data-status") == "succeeded", 180, "job succeeded")

    # The page says what the API says.
    job = client.fine_tuning.jobs.retrieve(job_id)
    assert job.status == "succeeded" and job.fine_tuned_model
    page.get_by_text("48 tokens", exact=True).wait_for()  # the extension's max_length, among the hyperparameters
    page.locator("#fine-tuned-model").wait_for()
    assert page.locator("#fine-tuned-model").inner_text() == job.fine_tuned_model
    assert job.fine_tuned_model in page.locator("#python-snippet").inner_text()
    assert SYSTEM in page.locator("#python-snippet").inner_text()
    checkpoints = client.fine_tuning.jobs.checkpoints.list(job_id).data
    page_checkpoints = page.locator("#checkpoints tbody tr")
    wait_until(lambda: page_checkpoints.count() == len(checkpoints), 10, "checkpoints listed")
    assert checkpoints[0].fine_tuned_model_checkpoint in page.locator("#checkpoints").inner_text()
    metrics_events = [e for e in client.fine_tuning.jobs.list_events(job_id, limit=1000).data if e.type == "metrics"]
    steps = {e.data["step"] for e in metrics_events if e.data and e.data.get("train_loss") is not None}
    assert chart_points(page) == len(steps)
    assert f"step {TOTAL_STEPS} / {TOTAL_STEPS}" in page.locator("#progress").inner_text()
    assert page.locator("#epoch-metrics tbody tr").count() >= 1  # per-epoch accuracy / macro-F1 on validation
    with page.expect_download() as download_info:
        page.click(".download-result")
    result_csv = Path(download_info.value.path()).read_text()
    assert result_csv.startswith("step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy")
    # Laptop-height viewport (not full_page) so the sticky header stays on top in the README picture.
    page.set_viewport_size({"width": 1280, "height": 1500})
    page.locator("#loss-chart").scroll_into_view_if_needed()
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(artifacts / "job-succeeded.png"))
    page.set_viewport_size({"width": 1280, "height": 860})

    # 4. Playground: the fine-tuned classifier answers with a label and its probability bars.
    page.click("text=Open in the playground")
    page.wait_for_url("**/#/playground?model=*")
    assert page.locator("#pg-model").input_value() == job.fine_tuned_model
    wait_until(lambda: page.locator("#pg-system").input_value() == SYSTEM, 10, "system prompt suggested")
    tweet = "@united lost my luggage and nobody answers the phone"
    page.fill("#pg-message", tweet)
    page.click("#pg-send")
    page.locator("#answer").wait_for()
    answer = page.locator("#answer-text").inner_text()
    assert answer in LABELS
    bars = page.locator("#probabilities .prob-row")
    assert sorted(bars.nth(i).get_attribute("data-label") or "" for i in range(bars.count())) == LABELS
    assert bars.first.get_attribute("data-label") == answer  # the top bar is the answer
    expected = client.chat.completions.create(
        model=job.fine_tuned_model,
        messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": tweet}],
        temperature=0,
    )
    assert expected.choices[0].message.content == answer
    page.screenshot(path=str(artifacts / "playground.png"), full_page=True)

    # 5. Delete the fine-tuned model on the Models page: gone from the API.
    page.goto(live_server.root_url + "/#/models")
    page.on("dialog", lambda dialog: dialog.accept())
    page.locator(f'[data-delete="{job.fine_tuned_model}"]').click()
    page.get_by_role("status").filter(has_text="Deleted").wait_for()
    assert job.fine_tuned_model not in {m.id for m in client.models.list()}
    assert page.locator(f'tr[data-model="{job.fine_tuned_model}"]').count() == 0
