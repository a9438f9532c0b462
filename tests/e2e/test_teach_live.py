"""`label`, `synth` and `distill` with a live localft server as the teacher: a fine-tuned classifier labels, a
base model generates, and a student is fine-tuned and compared. Tiny models keep it fast; the numbers they reach
are meaningless, so the tests check the workflow's outputs and accounting, not the accuracy."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import openai
import pytest
from click.testing import CliRunner

from localft.api.server import EmbeddedServer
from localft.cli import main
from localft.data.prepare import PrepareOptions, prepare_file

LABELS = ["negative", "neutral", "positive"]
TWEETS = "twitter_airline_sentiment/Tweets.csv"


def _fine_tune(client: openai.OpenAI, data: Path, model: Path) -> str:
    file_id = client.files.create(file=data, purpose="fine-tune").id
    job = client.fine_tuning.jobs.create(
        model=str(model),
        training_file=file_id,
        method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 1, "batch_size": 4}}},
    )
    deadline = time.monotonic() + 300
    while job.status not in ("succeeded", "failed", "cancelled") and time.monotonic() < deadline:
        time.sleep(0.5)
        job = client.fine_tuning.jobs.retrieve(job.id)
    assert job.status == "succeeded", job.error
    assert job.fine_tuned_model is not None
    return job.fine_tuned_model


def _tweets_csv(datasets: Path, path: Path, per_class: int) -> list[tuple[str, str]]:
    """The first `per_class` tweets of each class (after the ones the teacher trains on), as text,label."""
    rows: dict[str, list[str]] = {label: [] for label in LABELS}
    with (datasets / TWEETS).open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            bucket = rows[row["airline_sentiment"]]
            if len(bucket) < per_class + 5:
                bucket.append(" ".join(row["text"].split()))
    picked = [(text, label) for label, texts in rows.items() for text in texts[5:]]
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "airline_sentiment"])
        writer.writerows(picked)
    return picked


@pytest.fixture
def teacher(live_server: EmbeddedServer, datasets: Path, tiny_causal_lm: Path, tmp_path: Path) -> str:
    """A tiny classifier fine-tuned on 15 airline tweets through the live server."""
    options = PrepareOptions(text_column="text", label_column="airline_sentiment", per_class=5, sample="first")
    paths = prepare_file(datasets / TWEETS, options).write(tmp_path / "teacher-data")
    return _fine_tune(openai.OpenAI(base_url=live_server.base_url, api_key="x"), paths["train"], tiny_causal_lm)


def test_label_with_a_fine_tuned_classifier_as_teacher(
    live_server: EmbeddedServer, teacher: str, datasets: Path, tmp_path: Path
) -> None:
    source = tmp_path / "unlabelled.csv"
    picked = _tweets_csv(datasets, source, per_class=3)
    out = tmp_path / "labelled.jsonl"
    args = ["label", str(source), "-o", str(out), "--labels", ",".join(LABELS), "--model", teacher]
    result = CliRunner().invoke(main, [*args, "--base-url", live_server.base_url, "--quiet", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["labelled"] == len(picked) and summary["rejected"] == 0  # a classifier answers inside its labels
    assert summary["requests"]["requests"] == len(picked) and summary["requests"]["failures"] == 0
    assert summary["requests"]["total_tokens"] > 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["messages"][1]["content"] for r in records] == [text for text, _ in picked]
    assert {r["messages"][2]["content"] for r in records} <= set(LABELS)
    assert sum(summary["labels"].values()) == len(picked)


def test_synth_with_a_base_model_as_teacher(live_server: EmbeddedServer, tiny_causal_lm: Path, tmp_path: Path) -> None:
    out = tmp_path / "synth.csv"
    args = ["synth", "-o", str(out), "--labels", "refund,baggage", "--model", str(tiny_causal_lm), "-n", "3"]
    args += ["--per-request", "3", "--max-rounds", "2", "--max-tokens", "48", "--quiet", "--json"]
    args += ["--base-url", live_server.base_url]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["requests"]["failures"] == 0 and summary["requests"]["sent"] >= 2
    with out.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == summary["examples"]
    assert len({r["text"] for r in rows}) == len(rows)  # deduplicated
    for report in summary["classes"]:
        kept = sum(r["label"] == report["label"] for r in rows)
        assert report["kept"] == kept <= 3
        assert report["shortfall"] == 3 - kept  # reported, not padded
        assert report["generated"] >= kept + report["exact_duplicates"] + report["near_duplicates"]


def test_distill_teacher_to_student(
    live_server: EmbeddedServer, teacher: str, datasets: Path, tiny_causal_lm: Path, tmp_path: Path
) -> None:
    source = tmp_path / "pool.csv"
    picked = _tweets_csv(datasets, source, per_class=6)
    out = tmp_path / "distill"
    args = ["distill", str(source), "-o", str(out), "--labels", ",".join(LABELS), "--teacher", teacher]
    args += ["--student", str(tiny_causal_lm), "--gold-col", "airline_sentiment", "--holdout", "0.25"]
    args += ["--n-epochs", "1", "--batch-size", "4", "--base-url", live_server.base_url, "--quiet"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["reference"] == "gold labels"
    assert report["test_examples"] == round(len(picked) * 0.25)
    labelled = report["train_examples"] + report["validation_examples"]
    assert labelled + report["train_rejected"] == len(picked) - report["test_examples"]
    assert report["validation_examples"] == round(labelled * 0.1)  # the default --validation share
    teacher_row, student_row = report["scores"]
    assert (teacher_row["role"], teacher_row["model"]) == ("teacher", teacher)
    assert student_row["role"] == "student" and student_row["model"] == report["student_model"]
    for row in (teacher_row, student_row):
        assert row["n"] == report["test_examples"] and 0.0 <= row["accuracy"] <= 1.0
        assert row["cost_basis"] == "CPU seconds (latency upper bound)" and row["cost_usd"] > 0
    assert "teacher" in result.stdout and "student" in result.stdout  # the side-by-side table
    client = openai.OpenAI(base_url=live_server.base_url, api_key="x")
    assert report["student_model"] in [m.id for m in client.models.list().data]
