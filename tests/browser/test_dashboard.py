"""The dashboard in headless Chromium against a live server: files, the new-job validation report, evaluation
reports, API keys and phone widths. Everything the page shows is cross-checked with the official `openai` client.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import openai
import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

    from localft.api.server import EmbeddedServer
    from localft.settings import Settings

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}

SYSTEM = "Classify the sentiment of the airline tweet: positive, negative or neutral."
TWEETS = [
    ("@united thanks for the smooth flight and the friendly crew", "positive"),
    ("@united my bag was lost again, third time this year", "negative"),
    ("@united which gate does the Denver flight leave from?", "neutral"),
    ("@united great service at the counter today", "positive"),
    ("@united two hours on the tarmac and no updates", "negative"),
    ("@united is wifi available on the 737s?", "neutral"),
]


def chat_line(text: str, label: str) -> str:
    messages = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": text},
        {"role": "assistant", "content": label},
    ]
    return json.dumps({"messages": messages})


@pytest.fixture
def good_file(tmp_path: Path) -> Path:
    path = tmp_path / "tweets_train.jsonl"
    path.write_text("\n".join(chat_line(f"{text} #{i}", label) for i in range(2) for text, label in TWEETS) + "\n")
    return path


@pytest.fixture
def bad_file(tmp_path: Path) -> Path:
    """Valid JSON, but line 3 has an unknown role, line 5 no assistant answer, and there are only 5 examples."""
    lines = [chat_line(text, label) for text, label in TWEETS[:5]]
    lines[2] = lines[2].replace('"role": "system"', '"role": "robot"')
    lines[4] = json.dumps({"messages": [{"role": "user", "content": "no answer here"}]})
    path = tmp_path / "broken.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def client(live_server: EmbeddedServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=live_server.base_url, api_key="unused", max_retries=0)


def upload_on_files_page(page: Page, path: Path) -> str:
    """Uploads `path` through the Files page and returns the new file's id from the page."""
    page.goto(page.url.split("#")[0] + "#/files")
    page.set_input_files("#file-input", str(path))
    page.select_option("#upload-purpose", "fine-tune")
    page.click("#upload-form button[type=submit]")
    notice = page.get_by_role("status").filter(has_text=f"Uploaded {path.name}")
    match = re.search(r"as (file-\S+)\.", notice.inner_text())
    assert match, notice.inner_text()
    page.locator(f'tr[data-file-id="{match.group(1)}"]').wait_for()
    return match.group(1)


def test_upload_preview_validate_and_delete_files(
    page: Page, live_server: EmbeddedServer, client: openai.OpenAI, good_file: Path, bad_file: Path, artifacts: Path,
    tiny_encoder: Path,
) -> None:  # fmt: skip
    page.goto(live_server.root_url + "/#/files")
    good_id = upload_on_files_page(page, good_file)
    bad_id = upload_on_files_page(page, bad_file)
    listed = {f.id: f for f in client.files.list()}
    assert listed[good_id].filename == good_file.name and listed[good_id].purpose == "fine-tune"
    assert listed[good_id].bytes == good_file.stat().st_size
    row = page.locator(f'tr[data-file-id="{good_id}"]')
    assert good_file.name in row.inner_text()

    row.locator("[data-preview]").click()
    preview = page.locator("#file-preview")
    preview.wait_for()
    assert "12 lines; first 5 shown" in preview.inner_text()
    assert TWEETS[0][0] in preview.inner_text() and SYSTEM in preview.inner_text()
    page.screenshot(path=str(artifacts / "files-preview.png"), full_page=True)

    # The new-job form checks the chosen file before a job can start, naming lines and fixes.
    page.goto(live_server.root_url + "/#/jobs/new")
    page.select_option("#training-file", bad_id)
    report = page.locator("#validation-report")
    report.wait_for()
    assert report.get_attribute("data-ok") == "false"
    errors = report.locator(".problems.errors tbody tr")
    rows = [errors.nth(i).inner_text().split("\t") for i in range(errors.count())]
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("3", "unrecognized_role", "messages[0].role"),
        ("5", "example_missing_assistant_message", "messages"),
        ("—", "invalid_n_examples", "—"),
    ]
    assert "Errors (3)" in report.inner_text() and "must have at least 10 examples" in report.inner_text()
    assert "use one of system, user, assistant" in rows[0][4]
    assert "auto" not in report.inner_text()  # no epochs or trained tokens for a file that cannot train
    page.click("#create-job")
    assert "Fix the file's errors above first" in page.locator(".error-box").inner_text()
    page.screenshot(path=str(artifacts / "new-job-invalid-file.png"), full_page=True)

    page.select_option("#training-file", good_id)
    # The estimate shows at once; the preselected model's own count replaces it (a first use converts SmolLM2).
    page.locator('#validation-report[data-ok="true"]').wait_for()
    page.locator('#validation-report[data-pending="false"]').wait_for(timeout=120_000)
    text = page.locator("#validation-report").inner_text()
    assert "12 examples" in text and 'n_epochs "auto" would be 8' in text
    assert re.search(r"positive\s+4\s+33\.3%", text), text
    # The page shows the server's report for the preselected base model: counted with its tokenizer, not the
    # 4-characters estimate, the same report the validation endpoint returns for that model.
    default_model = page.locator("#base-model").input_value()
    assert default_model == "smollm2-135m-instruct"
    served = client.get(f"/files/{good_id}/validation?model={default_model}", cast_to=object)
    assert isinstance(served, dict) and served["n_epochs"] == 8
    tokens = served["tokens_per_example"]
    assert f"median {int(tokens['median'] + 0.5)}, max {tokens['max']}" in text
    assert f"Counted by {served['tokenizer']}" in text and "approximate" not in served["tokenizer"]
    assert f"about {served['trained_tokens']:,} trained tokens" in text
    assert page.locator("#n_epochs, [name=n_epochs]").get_attribute("placeholder") == "auto (8)"
    assert "(OpenAI's rule)" in text

    # Choosing an encoder re-checks the file with its tokenizer and its auto epochs: 7, what its job would run.
    page.fill("#base-model", str(tiny_encoder))
    page.locator("#base-model").press("Tab")
    page.locator("#validation-report", has_text=f"Counted by {tiny_encoder}").wait_for()
    text = page.locator("#validation-report").inner_text()
    assert 'n_epochs "auto" would be 7 (encoders\'' in text
    assert page.locator("[name=n_epochs]").get_attribute("placeholder") == "auto (7)"
    # A model the server cannot load falls back to the estimate instead of hiding the report.
    page.fill("#base-model", "no-such-model")
    page.locator("#base-model").press("Tab")
    page.locator("#validation-report", has_text="Counted by approximate").wait_for()
    assert page.locator("[name=n_epochs]").get_attribute("placeholder") == "auto (8)"

    # Delete from the Files page: gone from the API too.
    page.goto(live_server.root_url + "/#/files")
    page.on("dialog", lambda dialog: dialog.accept())
    page.locator(f'tr[data-file-id="{bad_id}"] [data-delete]').click()
    page.get_by_role("status").filter(has_text=f"Deleted {bad_file.name}").wait_for()
    assert page.locator(f'tr[data-file-id="{bad_id}"]').count() == 0
    assert bad_id not in {f.id for f in client.files.list()}


def test_upload_error_is_shown_with_the_servers_message(
    page: Page, live_server: EmbeddedServer, tmp_path: Path
) -> None:
    not_jsonl = tmp_path / "notes.jsonl"
    not_jsonl.write_text('{"messages": []}\nthis is not json\n')
    page.goto(live_server.root_url + "/#/files")
    page.set_input_files("#file-input", str(not_jsonl))
    page.click("#upload-form button[type=submit]")
    error = page.get_by_role("alert")
    error.wait_for()
    # OpenAI's message for a non-JSONL fine-tuning file, with the line the server found, and the field.
    assert "Error 400" in error.inner_text() and "line 2" in error.inner_text()
    assert "(field: file)" in error.inner_text()
    assert page.locator("tr[data-file-id]").count() == 0


def test_eval_report_is_drawn_from_an_uploaded_report(
    page: Page, live_server: EmbeddedServer, client: openai.OpenAI, artifacts: Path
) -> None:
    from localft.eval.compare import CompareRow, Comparison
    from localft.eval.metrics import classification_metrics, latency_stats
    from localft.eval.report import EvalReport

    gold = ["negative"] * 5 + ["neutral"] * 3 + ["positive"] * 2
    pred = ["negative"] * 4 + ["neutral"] + ["neutral"] * 2 + ["maybe"] + ["positive"] * 2
    report = EvalReport(
        model="ft:tiny:localft:airline:abcd1234",
        testset="airline_test.jsonl",
        n=len(gold),
        task="single_label",
        metrics=classification_metrics(gold, pred, ["negative", "neutral", "positive"]),
        latency=latency_stats([0.1] * len(gold), 2.0),
        failures=0,
        answer_format={},
        wall_s=2.0,
        answered_in_run=len(gold),
    )
    single = client.files.create(
        file=("report-airline.json", report.to_json().encode(), "application/json"), purpose="evals"
    )
    baseline = replace(report, model="tfidf-logreg", metrics=classification_metrics(gold, gold[:5] + gold[:5]))
    comparison = Comparison(
        testset="airline_test.jsonl",
        task="single_label",
        n=len(gold),
        rows=[
            CompareRow("fine-tuned", "fine-tuned encoder", report, train_s=95.0),
            CompareRow("tf-idf", "baseline", baseline),
        ],
    )
    compared = client.files.create(
        file=("report-compare-airline.json", json.dumps(comparison.to_dict(with_reports=True)).encode()),
        purpose="evals",
    )

    page.goto(f"{live_server.root_url}/#/evals?file={single.id}")
    page.locator(f'#eval-report[data-file="{single.id}"]').wait_for()
    kpis = page.locator(".kpi").all_inner_texts()
    assert "accuracy\n80.0%" in kpis  # 8 of 10 right
    assert "outside label set\n1" in kpis
    matrix = page.locator("#confusion-matrix tbody tr")
    assert matrix.nth(0).locator("td").all_inner_texts() == ["4", "1", "0", "0"]
    assert matrix.nth(1).locator("td").all_inner_texts() == ["0", "2", "0", "1"]
    assert "“maybe” ×1" in page.locator(".eval-result").inner_text()
    page.screenshot(path=str(artifacts / "eval-report.png"), full_page=True)

    # A comparison: one table and chart for all models, then each model's own report.
    page.select_option("#eval-picker", compared.id)
    page.locator(f'#eval-report[data-file="{compared.id}"]').wait_for()
    rows = page.locator("#comparison tbody tr")
    macro = f"{100 * report.metrics.macro_f1:.1f}%"
    assert rows.nth(0).locator("td").all_inner_texts()[:6] == [
        "fine-tuned",
        "fine-tuned encoder",
        "80.0%",
        macro,
        "1",
        "1 min 35 s",
    ]
    assert rows.nth(1).locator("td").all_inner_texts()[:5] == [
        "tf-idf",
        "baseline",
        "50.0%",
        f"{100 * baseline.metrics.macro_f1:.1f}%",
        "0",
    ]
    assert page.locator(".eval-result h2").all_inner_texts() == [report.model, "tfidf-logreg"]
    page.screenshot(path=str(artifacts / "eval-comparison.png"), full_page=True)


@pytest.fixture
def workerless_server(settings: Settings) -> Iterator[EmbeddedServer]:
    """No worker: jobs are validated by the API, then stay queued, so the buttons can be driven step by step."""
    from localft.api.server import EmbeddedServer

    with EmbeddedServer(replace(settings, embedded_worker=False)) as server:
        yield server


def test_job_page_pause_resume_and_cancel_buttons(
    page: Page, workerless_server: EmbeddedServer, good_file: Path, artifacts: Path
) -> None:
    client = openai.OpenAI(base_url=workerless_server.base_url, api_key="unused", max_retries=0)
    training = client.files.create(file=good_file.open("rb"), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(model="smollm2-135m-instruct", training_file=training.id, suffix="buttons")
    page.goto(f"{workerless_server.root_url}/#/jobs")
    page.locator(f'tr[data-job-id="{job.id}"]').wait_for()
    assert "buttons" in page.locator(f'tr[data-job-id="{job.id}"]').inner_text()
    page.click(f'a[href="#/jobs/{job.id}"]')
    badge = page.locator("h1 .badge")
    page.locator('h1 .badge[data-status="queued"]').wait_for()

    page.click("#pause")
    page.locator('h1 .badge[data-status="paused"]').wait_for()
    assert client.fine_tuning.jobs.retrieve(job.id).status == "paused"
    assert page.locator("#pause").count() == 0
    page.click("#resume")
    page.locator('h1 .badge[data-status="queued"]').wait_for()
    assert client.fine_tuning.jobs.retrieve(job.id).status == "queued"
    page.click("#cancel")
    page.locator('h1 .badge[data-status="cancelled"]').wait_for()
    assert client.fine_tuning.jobs.retrieve(job.id).status == "cancelled"
    assert page.locator("#pause, #resume, #cancel").count() == 0
    assert badge.inner_text() == "cancelled"

    # The event log (polled while the job was live) shows what the API recorded, newest first.
    page.reload()
    page.locator("#events tbody tr").first.wait_for()
    logged = page.locator("#events tbody tr td:nth-child(3)").all_inner_texts()
    assert logged == [e.message for e in client.fine_tuning.jobs.list_events(job.id, limit=100).data]
    assert "Fine-tuning job paused" in logged and "Fine-tuning job resumed" in logged
    page.screenshot(path=str(artifacts / "job-cancelled.png"), full_page=True)


@pytest.fixture
def keyed_server(settings: Settings) -> Iterator[EmbeddedServer]:
    from localft.api.server import EmbeddedServer

    with EmbeddedServer(replace(settings, api_keys=("sk-right",), embedded_worker=False)) as server:
        yield server


def test_api_key_is_asked_for_and_kept_in_the_session_only(page: Page, keyed_server: EmbeddedServer) -> None:
    page.goto(keyed_server.root_url + "/#/models")
    dialog = page.locator("#key-dialog")
    dialog.wait_for(state="visible")
    page.fill("#key-input", "sk-wrong")
    page.click("#key-form button[value=save]")
    # The wrong key is refused by the server, so the page asks again and says why.
    page.locator("#key-error").wait_for(state="visible")
    assert "refused" in page.locator("#key-error").inner_text()
    page.fill("#key-input", "sk-right")
    page.click("#key-form button[value=save]")
    page.locator('tr[data-model="smollm2-135m-instruct"]').wait_for()
    assert page.evaluate("sessionStorage.getItem('localft.apiKey')") == "sk-right"
    assert page.evaluate("localStorage.length") == 0


@pytest.mark.parametrize("route", ["jobs", "jobs/new", "models", "files", "playground", "evals", "compare"])
def test_pages_fit_a_phone_screen(browser: Browser, live_server: EmbeddedServer, route: str, artifacts: Path) -> None:
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{live_server.root_url}/#/{route}")
    page.locator(".page h1").first.wait_for()
    page.wait_for_load_state("networkidle")
    # Wide tables scroll inside their own box; the page itself must not scroll sideways.
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    page.screenshot(path=str(artifacts / f"phone-{route.replace('/', '-')}.png"), full_page=True)
    context.close()
    assert overflow <= 0
    assert not errors


def test_playground_chats_with_a_base_model_and_shows_errors(
    page: Page, live_server: EmbeddedServer, client: openai.OpenAI, tiny_causal_lm: Path
) -> None:
    page.goto(live_server.root_url + "/#/playground")
    page.fill("#pg-model", "no-such-model")
    page.fill("#pg-message", "hello")
    page.click("#pg-send")
    error = page.get_by_role("alert")
    error.wait_for()
    assert "Error 404" in error.inner_text() and "no-such-model" in error.inner_text()

    model = str(tiny_causal_lm)
    page.fill("#pg-model", model)
    page.fill("#pg-max-tokens", "5")
    turns = ["the flight was great", "my bag was lost"]
    answers = []
    for turn in turns:
        page.fill("#pg-message", turn)
        page.click("#pg-send")
        page.locator("#answer").wait_for()
        answers.append(page.locator("#answer-text").inner_text())
        page.wait_for_function("document.querySelector('#pg-message').value === ''")

    # The second turn was sent with the first exchange as history, and the page shows that history.
    assert page.locator("#transcript .content").all_inner_texts() == [turns[0], answers[0], turns[1]]
    expected = client.chat.completions.create(
        model=model,
        messages=[
            {"role": "user", "content": turns[0]},
            {"role": "assistant", "content": answers[0]},
            {"role": "user", "content": turns[1]},
        ],
        temperature=0,
        max_tokens=5,
        logprobs=True,
        top_logprobs=20,
    )
    choice = expected.choices[0]
    assert (choice.message.content or "").strip() == answers[1].strip()
    # Not a classifier: the bars are the first generated token's top alternatives, as OpenAI returns them.
    assert page.locator("#probabilities h3").inner_text() == "First-token probabilities"
    assert choice.logprobs and choice.logprobs.content
    assert page.locator("#probabilities .prob-row").count() == len(choice.logprobs.content[0].top_logprobs)
