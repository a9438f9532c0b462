"""The Models and Evaluations pages in headless Chromium: what base models say about themselves, where a base
encoder leads, local folders listed once trained, and evaluation reports titled by what they scored and linked
from the job and model pages.

Jobs are created on a server without a worker and finished through the store, as a worker finishes them, so the
pages can be checked without training.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import openai
import pytest

from localft.jobs.schema import ModelRecord
from localft.jobs.store import Store

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from localft.api.server import EmbeddedServer
    from localft.settings import Settings

pytestmark = pytest.mark.browser

SYSTEM = "Classify the sentiment: positive or negative."


@pytest.fixture
def workerless(settings: Settings) -> Iterator[EmbeddedServer]:
    from localft.api.server import EmbeddedServer

    with EmbeddedServer(replace(settings, embedded_worker=False)) as server:
        yield server


@pytest.fixture
def client(workerless: EmbeddedServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=workerless.base_url, api_key="unused", max_retries=0)


def training_file(client: openai.OpenAI, folder: Path) -> str:
    lines = [
        json.dumps(
            {
                "messages": [
                    {"role": "system", "content": SYSTEM},
                    {"role": "user", "content": f"text number {i}"},
                    {"role": "assistant", "content": "positive" if i % 2 else "negative"},
                ]
            }
        )
        for i in range(12)
    ]
    path = folder / "train.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return client.files.create(file=path.open("rb"), purpose="fine-tune").id


def finish(settings: Settings, job_id: str, model_id: str) -> None:
    """What a worker does when a run succeeds: the job holds its model, and the model is registered."""
    store = Store.open(settings.db_url)
    try:
        job = store.get_job(job_id)
        store.transition(job_id, status="running", worker_id="test-worker")
        record = ModelRecord(model_id, job.created_at + 60, job.organization_id, job_id, job.base_model, "models/x")
        done = store.complete_job(
            job_id, "test-worker", record, ["The job has successfully completed"], fine_tuned_model=model_id,
            finished_at=job.created_at + 60,
        )  # fmt: skip
        assert done
    finally:
        store.close()


def eval_report(model: str) -> bytes:
    from localft.eval.metrics import classification_metrics, latency_stats
    from localft.eval.report import EvalReport

    gold = ["negative", "positive"] * 5
    report = EvalReport(
        model=model,
        testset="sentiment_test.jsonl",
        n=len(gold),
        task="single_label",
        metrics=classification_metrics(gold, gold, ["negative", "positive"]),
        latency=latency_stats([0.1] * len(gold), 1.0),
        failures=0,
        answer_format={},
        wall_s=1.0,
        answered_in_run=len(gold),
    )
    return report.to_json().encode()


def test_base_models_show_family_size_and_installed_state(
    page: Page, workerless: EmbeddedServer, client: openai.OpenAI, tiny_encoder: Path, tmp_path: Path, artifacts: Path
) -> None:
    # A local folder is a base model too once a job has used it.
    client.fine_tuning.jobs.create(model=str(tiny_encoder), training_file=training_file(client, tmp_path))
    page.goto(workerless.root_url + "/#/models")
    smollm = page.locator('tr[data-model="smollm2-135m-instruct"]')
    smollm.wait_for()

    def cell(row: str, column: str) -> str:
        return page.locator(f'tr[data-model="{row}"] td[data-label="{column}"]').inner_text().strip()

    assert (cell("smollm2-135m-instruct", "Family"), cell("smollm2-135m-instruct", "Size")) == ("LLM", "135M")
    assert cell("smollm2-135m-instruct", "Installed").startswith("yes")
    assert "Jan 1, 2026" not in page.locator("main, body").first.inner_text()  # no placeholder date
    assert (cell("minilm-l6", "Family"), cell("minilm-l6", "Size")) == ("encoder", "22.7M")
    # The opt-in model is not installed by `make setup`: the page says how to install it.
    assert "localft models pull qwen2.5-coder-0.5b-instruct" in cell("qwen2.5-coder-0.5b-instruct", "Installed")
    assert (cell(str(tiny_encoder), "Family"), cell(str(tiny_encoder), "Description")) == (
        "encoder",
        "Local Hugging Face folder",
    )

    page.screenshot(path=str(artifacts / "models.png"), full_page=True)

    # A base encoder has no chat of its own: it is offered for fine-tuning, which opens the form with it chosen.
    encoder = page.locator('tr[data-model="minilm-l6"]')
    assert encoder.locator("[data-playground]").count() == 0
    assert smollm.locator("[data-playground]").count() == 1
    encoder.locator("[data-fine-tune]").click()
    page.wait_for_url("**/#/jobs/new?model=minilm-l6")
    assert page.locator("#base-model").input_value() == "minilm-l6"


def test_new_job_offers_only_base_models(
    page: Page, workerless: EmbeddedServer, client: openai.OpenAI, settings: Settings, tmp_path: Path
) -> None:
    job = client.fine_tuning.jobs.create(model="smollm2-135m-instruct", training_file=training_file(client, tmp_path))
    finish(settings, job.id, "ft:smollm2-135m-instruct:localft::abcd1234")
    page.goto(workerless.root_url + "/#/jobs/new")
    page.locator("#base-model").wait_for()
    offered = page.locator("#base-models option").evaluate_all("(options) => options.map((o) => o.value)")
    assert "smollm2-135m-instruct" in offered and not any(m.startswith("ft:") for m in offered)
    assert "ft:" not in page.locator("#new-job-form .hint").inner_text().replace("A fine-tuned ft: model cannot", "")
    # Consistent with the API, which refuses an ft: model as a base.
    with pytest.raises(openai.BadRequestError) as refused:
        client.fine_tuning.jobs.create(
            model="ft:smollm2-135m-instruct:localft::abcd1234", training_file=job.training_file
        )
    assert refused.value.code == "model_not_available"


def test_empty_evaluations_page_has_no_raw_markdown(page: Page, workerless: EmbeddedServer) -> None:
    page.goto(workerless.root_url + "/#/evals")
    empty = page.locator(".empty")
    empty.wait_for()
    assert "`" not in empty.inner_text()
    assert empty.locator("code").all_inner_texts() == ["localft eval", "localft compare", "evals"]


def test_reports_are_titled_by_model_and_linked_from_job_and_model_pages(
    page: Page, workerless: EmbeddedServer, client: openai.OpenAI, settings: Settings, tmp_path: Path
) -> None:
    model = "ft:smollm2-135m-instruct:localft:sentiment:abcd1234"
    job = client.fine_tuning.jobs.create(
        model="smollm2-135m-instruct", training_file=training_file(client, tmp_path), suffix="sentiment"
    )
    finish(settings, job.id, model)
    report = client.files.create(file=("report-sentiment-1796657993.json", eval_report(model)), purpose="evals")
    title = f"{model} on sentiment_test.jsonl"

    page.goto(f"{workerless.root_url}/#/jobs/{job.id}")
    link = page.locator(f'#job-reports a[data-report="{report.id}"]')
    link.wait_for()
    assert link.inner_text() == title
    link.click()
    page.locator(f'#eval-report[data-file="{report.id}"]').wait_for()
    assert page.locator("#eval-title").inner_text() == title  # not the file name
    assert "report-sentiment-1796657993.json" in page.locator("#eval-report").inner_text()  # which is still shown
    option = page.locator(f'#eval-picker option[value="{report.id}"]')
    page.wait_for_function("(o) => !o.textContent.startsWith('report-')", arg=option.element_handle())
    assert option.inner_text().startswith(f"{title} (")

    page.goto(workerless.root_url + "/#/models")
    row = page.locator(f'tr[data-model="{model}"]')
    row.locator(f'a[data-report="{report.id}"]').wait_for()
    assert row.locator(f'a[data-report="{report.id}"]').inner_text() == title
