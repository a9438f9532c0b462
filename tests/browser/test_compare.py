"""Comparing runs on the dashboard, in headless Chromium: the job list's progress, duration and final validation
score, its filters, the compare page's overlaid curves and smoothing, and the job page's folded step events.

The runs are scripted: jobs are created through the API on a server without a worker, and their metrics events
are written to the store the way a worker's sink writes them, so the curves are known exactly and nothing trains.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import openai
import pytest

from localft.jobs.store import Store

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from localft.api.server import EmbeddedServer
    from localft.settings import Settings

pytestmark = pytest.mark.browser

SYSTEM = "Classify the sentiment of the airline tweet: positive, negative or neutral."
STEPS = 24
EPOCH_STEPS = 8


@pytest.fixture
def workerless(settings: Settings) -> Iterator[EmbeddedServer]:
    from localft.api.server import EmbeddedServer

    with EmbeddedServer(replace(settings, embedded_worker=False)) as server:
        yield server


def training_file(client: openai.OpenAI, folder: Path) -> str:
    import json

    rows = [("great crew", "positive"), ("lost my bag", "negative"), ("which gate?", "neutral")] * 4
    lines = [
        json.dumps(
            {
                "messages": [
                    {"role": "system", "content": SYSTEM},
                    {"role": "user", "content": f"{text} #{i}"},
                    {"role": "assistant", "content": label},
                ]
            }
        )
        for i, (text, label) in enumerate(rows)
    ]
    path = folder / "train.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return client.files.create(file=path.open("rb"), purpose="fine-tune").id


def loss_at(step: int, speed: float) -> float:
    """A noisy falling loss: the zigzag is what smoothing irons out."""
    return 1.5 * math.exp(-speed * step) + (0.08 if step % 2 else -0.08)


def script_run(store: Store, job_id: str, speed: float, accuracy: list[float], *, finish: bool = True) -> None:
    """Step and epoch-end metrics events as the worker's sink writes them, then the job succeeds (or stays put)."""
    store.transition(job_id, status="running", message="Fine-tuning job started")
    last = STEPS if finish else STEPS // 2
    for step in range(1, last + 1):
        data: dict[str, Any] = {"step": step, "total_steps": STEPS, "train_loss": loss_at(step, speed)}
        if step % EPOCH_STEPS == 0:
            epoch = step // EPOCH_STEPS
            acc = accuracy[epoch - 1]
            data |= {
                "epoch": epoch,
                "full_valid_loss": 1.2 / epoch,
                "full_valid_accuracy": acc,
                "full_valid_macro_f1": acc - 0.01,
                "full_valid_weighted_f1": acc,
            }
        store.add_event(
            job_id, f"Step {step}/{STEPS}: training loss={data['train_loss']:.4f}", type="metrics", data=data
        )
    if finish:
        finished = store.get_job(job_id).created_at + 95
        store.transition(job_id, status="succeeded", finished_at=finished, message="The job has successfully completed")


@pytest.fixture
def scripted_jobs(workerless: EmbeddedServer, settings: Settings, tmp_path: Path) -> dict[str, str]:
    """Three jobs: two finished runs of different speeds ("fast", "slow") and one still running ("live")."""
    client = openai.OpenAI(base_url=workerless.base_url, api_key="unused", max_retries=0)
    file_id = training_file(client, tmp_path)
    ids = {}
    for suffix in ("fast", "slow", "live"):
        ids[suffix] = client.fine_tuning.jobs.create(
            model="smollm2-135m-instruct" if suffix != "slow" else "minilm-l6", training_file=file_id, suffix=suffix
        ).id
    store = Store.open(settings.db_url)
    try:
        script_run(store, ids["fast"], 0.2, [0.70, 0.85, 0.90])
        script_run(store, ids["slow"], 0.05, [0.50, 0.60, 0.66])
        script_run(store, ids["live"], 0.1, [0.55, 0.65, 0.70], finish=False)
    finally:
        store.close()
    return ids


def zigzag(ys: list[float]) -> float:
    return sum(abs(b - a) for a, b in itertools.pairwise(ys))


def datasets(page: Page, canvas: str) -> list[dict[str, Any]]:
    """The chart's datasets as Chart.js holds them (label, points and styles)."""
    script = """(selector) => Chart.getChart(document.querySelector(selector)).data.datasets.map((d) => ({
        label: d.label, data: d.data, pointStyle: d.pointStyle, pointRadius: d.pointRadius,
        borderDash: d.borderDash, order: d.order }))"""
    result: list[dict[str, Any]] = page.evaluate(script, canvas)
    return result


def test_job_list_shows_progress_duration_score_and_filters(
    page: Page, workerless: EmbeddedServer, scripted_jobs: dict[str, str]
) -> None:
    page.goto(workerless.root_url + "/#/jobs")
    fast = page.locator(f'tr[data-job-id="{scripted_jobs["fast"]}"]')
    fast.locator(".score").wait_for()

    def cell(column: str) -> str:
        return fast.locator(f'td[data-label="{column}"]').inner_text().strip()

    assert cell("Progress") == f"{STEPS} / {STEPS}"
    assert cell("Validation") == "90.0% accuracy"
    assert cell("Duration") == "1 min 35 s"
    live = page.locator(f'tr[data-job-id="{scripted_jobs["live"]}"]')
    assert live.locator(".progress").get_attribute("data-step") == str(STEPS // 2)
    assert "55.0% accuracy" in live.inner_text()  # its first epoch's score, while it runs

    rows = page.locator("tbody tr[data-job-id]")
    page.select_option("#filter-status", "succeeded")
    assert rows.count() == 2
    page.select_option("#filter-model", "minilm-l6")
    assert [rows.nth(i).get_attribute("data-job-id") for i in range(rows.count())] == [scripted_jobs["slow"]]
    assert "2 jobs hidden by the filters" in page.locator("#filtered-out").inner_text()
    page.select_option("#filter-status", "")
    page.select_option("#filter-model", "")
    page.fill("#filter-suffix", "LIV")
    assert [rows.nth(i).get_attribute("data-job-id") for i in range(rows.count())] == [scripted_jobs["live"]]
    page.fill("#filter-suffix", "")
    assert rows.count() == 3


def test_selected_runs_are_overlaid_with_smoothing(
    page: Page, workerless: EmbeddedServer, scripted_jobs: dict[str, str], artifacts: Path
) -> None:
    page.goto(workerless.root_url + "/#/jobs")
    compare = page.locator("#compare-selected")
    compare.wait_for()
    assert compare.get_attribute("aria-disabled") == "true"
    for suffix in ("fast", "slow"):
        page.check(f'[data-select="{scripted_jobs[suffix]}"]')
    assert compare.inner_text() == "Compare selected (2)"
    compare.click()
    page.wait_for_url("**/#/compare?jobs=*")
    page.locator("#compare-runs tbody tr").nth(1).wait_for()
    summary = page.locator("#compare-runs tbody tr")
    assert "90.0% accuracy" in summary.nth(0).inner_text() and "66.0% accuracy" in summary.nth(1).inner_text()
    # Training time runs from the "started" event, not from creation (jobs queue behind one another).
    assert re.fullmatch(r"1 min 3[0-5] s", summary.nth(0).locator('td[data-label="Training time"]').inner_text())

    # One smoothed line per run, each over its raw curve; the raw points are what the API recorded.
    lines = datasets(page, "#compare-loss")
    assert [d["label"] for d in lines] == [
        f"fast ({scripted_jobs['fast'][-6:]})",
        f"fast ({scripted_jobs['fast'][-6:]}) (raw)",
        f"slow ({scripted_jobs['slow'][-6:]})",
        f"slow ({scripted_jobs['slow'][-6:]}) (raw)",
    ]
    raw = [p["y"] for p in lines[1]["data"]]
    assert raw == pytest.approx([loss_at(s, 0.2) for s in range(1, STEPS + 1)])
    smoothed = [p["y"] for p in lines[0]["data"]]
    assert zigzag(smoothed) < zigzag(raw) / 2

    # The validation chart overlays the chosen classification metric at each epoch end, as measured: smoothing
    # three exact points would understate the final score.
    metric = datasets(page, "#compare-metric-chart")
    assert [[p["y"] for p in d["data"]] for d in metric] == [
        pytest.approx([0.70, 0.85, 0.90]),
        pytest.approx([0.5, 0.6, 0.66]),
    ]
    page.select_option("#compare-metric", "full_valid_macro_f1")
    metric = datasets(page, "#compare-metric-chart")
    assert [p["y"] for p in metric[0]["data"]] == pytest.approx([0.69, 0.84, 0.89])

    # No smoothing: the lines are the measurements and the faint copies go away.
    page.locator("#smoothing").fill("0")
    lines = datasets(page, "#compare-loss")
    assert len(lines) == 2 and [p["y"] for p in lines[0]["data"]] == pytest.approx(raw)
    page.locator("#smoothing").fill("0.6")
    page.screenshot(path=str(artifacts / "compare-scripted.png"), full_page=True)


def test_job_page_folds_step_events_and_keeps_metric_lines_apart(
    page: Page, workerless: EmbeddedServer, scripted_jobs: dict[str, str], artifacts: Path
) -> None:
    client = openai.OpenAI(base_url=workerless.base_url, api_key="unused", max_retries=0)
    job_id = scripted_jobs["fast"]
    page.goto(f"{workerless.root_url}/#/jobs/{job_id}")
    page.locator("#step-events").wait_for()
    events = client.fine_tuning.jobs.list_events(job_id, limit=1000).data
    messages = [e.message for e in events if e.type != "metrics"]
    rows = page.locator("#events tbody tr")
    assert rows.locator("td:nth-child(3)").all_inner_texts() == messages
    assert f"{STEPS} step events folded" in page.locator("#step-events").inner_text()
    height = "document.documentElement.scrollHeight"
    folded = page.evaluate(height)
    page.click("#toggle-step-events")
    assert rows.count() == len(events)
    assert page.evaluate(height) > folded + STEPS * 20  # each step was a row of its own
    page.click("#toggle-step-events")
    assert rows.count() == len(messages)

    page.screenshot(path=str(artifacts / "job-folded-events.png"), full_page=True)

    # The time column stays on one line: every cell is as tall as a one-line cell.
    time_cell = rows.first.locator("td.time")
    assert time_cell.evaluate("(td) => getComputedStyle(td).whiteSpace") == "nowrap"
    page.set_viewport_size({"width": 900, "height": 800})
    heights = rows.locator("td.time").evaluate_all("(cells) => cells.map((c) => c.getBoundingClientRect().height)")
    level_heights = rows.locator("td:nth-child(2)").evaluate_all(
        "(c) => c.map((x) => x.getBoundingClientRect().height)"
    )
    assert heights == level_heights

    # accuracy, macro F1 and weighted F1 lie within 0.01: each has its own marker, size and dash.
    lines = {d["label"]: d for d in datasets(page, "#accuracy-chart")}
    extras = [lines[f"valid {name}"] for name in ("accuracy", "macro f1", "weighted f1")]
    assert len({d["pointStyle"] for d in extras}) == 3
    assert len({d["pointRadius"] for d in extras}) == 3
    assert len({str(d["borderDash"]) for d in extras}) == 3
    # Smaller markers are drawn over larger ones (Chart.js draws lower `order` on top).
    assert sorted(extras, key=lambda d: d["order"]) == sorted(extras, key=lambda d: d["pointRadius"])
