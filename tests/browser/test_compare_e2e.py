"""Comparing real runs: three fine-tunes of the built-in `minilm-l6` encoder on airline tweets, at three learning
rates, trained by a live server on the CPU, then selected on the Jobs page and overlaid on the compare page.

The screenshot `test-artifacts/browser/dashboard-compare.png` is the README's picture (docs/dashboard-compare.png).
"""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import openai
import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from localft.api.server import EmbeddedServer

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.timeout(1200),
    # Three real fine-tunes for a picture: minutes that CI's time limit cannot spare; the compare page itself is
    # tested against scripted jobs in test_compare.py.
    pytest.mark.skipif(
        os.environ.get("LOCALFT_DOCS_SCREENSHOTS") != "1",
        reason="takes docs/dashboard-compare.png only with LOCALFT_DOCS_SCREENSHOTS=1",
    ),
]

SYSTEM = "Classify the sentiment of the airline tweet: positive, negative or neutral."
LABELS = ["negative", "neutral", "positive"]
N_TRAIN, N_VALID = 60, 20  # per label
LEARNING_RATES = (1.0, 3.0, 6.0)


def write_split(path: Path, texts: dict[str, list[str]]) -> Path:
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
        for text in texts[label]
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def airline_splits(datasets: Path, folder: Path) -> tuple[Path, Path]:
    per_label: dict[str, list[str]] = {label: [] for label in LABELS}
    with (datasets / "twitter_airline_sentiment" / "Tweets.csv").open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if len(per_label[row["airline_sentiment"]]) < N_TRAIN + N_VALID:
                per_label[row["airline_sentiment"]].append(row["text"])
    train = write_split(folder / "airline_train.jsonl", {k: v[:N_TRAIN] for k, v in per_label.items()})
    valid = write_split(folder / "airline_valid.jsonl", {k: v[N_TRAIN:] for k, v in per_label.items()})
    return train, valid


def test_three_real_runs_compared(
    page: Page, live_server: EmbeddedServer, datasets: Path, tmp_path: Path, artifacts: Path
) -> None:
    client = openai.OpenAI(base_url=live_server.base_url, api_key="unused", max_retries=0)
    train, valid = airline_splits(datasets, tmp_path)
    train_id = client.files.create(file=train.open("rb"), purpose="fine-tune").id
    valid_id = client.files.create(file=valid.open("rb"), purpose="fine-tune").id
    jobs = [
        client.fine_tuning.jobs.create(
            model="minilm-l6",
            training_file=train_id,
            validation_file=valid_id,
            suffix=f"lr-{lr:g}x",
            seed=7,
            method={
                "type": "supervised",
                "supervised": {"hyperparameters": {"n_epochs": 3, "batch_size": 8, "learning_rate_multiplier": lr}},
            },
        )
        for lr in LEARNING_RATES
    ]
    deadline = time.monotonic() + 1100
    while any(client.fine_tuning.jobs.retrieve(j.id).status != "succeeded" for j in jobs):
        failed = [j.id for j in jobs if client.fine_tuning.jobs.retrieve(j.id).status in ("failed", "cancelled")]
        assert not failed and time.monotonic() < deadline, f"jobs did not succeed: {failed}"
        time.sleep(2)

    page.set_viewport_size({"width": 1280, "height": 1180})
    page.goto(live_server.root_url + "/#/jobs")
    for job in jobs:
        page.locator(f'tr[data-job-id="{job.id}"] .score').wait_for()
        page.check(f'[data-select="{job.id}"]')
    page.screenshot(path=str(artifacts / "jobs-list.png"))
    page.click("#compare-selected")
    page.locator("#compare-runs tbody tr").nth(len(jobs) - 1).wait_for()
    page.select_option("#compare-metric", "full_valid_macro_f1")

    # What the charts draw is what the API recorded, one line per run.
    for job, row in zip(jobs, page.locator("#compare-runs tbody tr").all(), strict=True):
        events = client.fine_tuning.jobs.list_events(job.id, limit=1000).data
        epochs = [e.data for e in events if e.type == "metrics" and e.data and "full_valid_macro_f1" in e.data]
        final = max(epochs, key=lambda d: d["step"])
        assert f"{100 * final['full_valid_accuracy']:.1f}% accuracy" in row.inner_text()
    lines = page.evaluate(
        "Chart.getChart(document.querySelector('#compare-metric-chart')).data.datasets.map((d) => d.label)"
    )
    assert len(lines) == len(jobs)
    page.evaluate("window.scrollTo(0, 0)")
    page.set_viewport_size({"width": 1280, "height": 760})  # the page's height: no blank band in the picture
    page.screenshot(path=str(artifacts / "dashboard-compare.png"))
