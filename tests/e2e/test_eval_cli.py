"""`localft eval` through a live server with a tiny model: report files, JSON, and a resumed run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from localft.cli import main

TWEETS = [
    ("the flight was great thanks", "positive"),
    ("my bag was lost again", "negative"),
    ("a neutral question about the gate", "neutral"),
    ("great crew, great flight", "positive"),
    ("lost my bag, never again", "negative"),
    ("which gate is the flight at", "neutral"),
    ("thanks for the great service", "positive"),
    ("the flight was delayed and my bag lost", "negative"),
]


def _write_test(path: Path) -> Path:
    with path.open("w") as fh:
        for text, label in TWEETS:
            messages = [{"role": "user", "content": text}, {"role": "assistant", "content": label}]
            fh.write(json.dumps({"messages": messages}) + "\n")
    return path


def _eval(args: list[str]) -> Any:
    result = CliRunner().invoke(main, ["eval", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def test_eval_writes_reports_and_resumes_from_cache(live_server: Any, tiny_causal_lm: Path, tmp_path: Path) -> None:
    test = _write_test(tmp_path / "test.jsonl")
    out = tmp_path / "report"
    base = ["--base-url", live_server.base_url, "-m", str(tiny_causal_lm), "-o", str(out), "--concurrency", "2"]
    first = _eval([str(test), *base, "--max-tokens", "3"])
    assert "accuracy" in first.output and "Answers outside the label set" in first.output
    for name in ("report.json", "report.md", "predictions.jsonl", "confusion.png", "per_class_f1.png", "cache.jsonl"):
        assert (out / name).is_file(), name
    report = json.loads((out / "report.json").read_text())
    assert report["n"] == 8 and report["task"] == "single_label"
    assert report["metrics"]["labels"] == ["negative", "neutral", "positive"]
    # A base model is asked zero-shot with the labels listed in a system prompt.
    assert "negative, neutral, positive" in report["extra"]["zero_shot_prompt"]
    assert report["usage"]["sent"] == 8 and report["usage"]["cached"] == 0
    answers = [json.loads(line)["answer"] for line in (out / "predictions.jsonl").read_text().splitlines()]
    # The untrained tiny model answers noise: every answer that is not a label is counted, none is mapped.
    outside = sum(a.strip() not in ("negative", "neutral", "positive") for a in answers)
    assert report["metrics"]["n_out_of_set"] == outside

    # Simulate a run killed after 5 answers, mid-way through writing the 6th line.
    cache = out / "cache.jsonl"
    lines = cache.read_text().splitlines()
    cache.write_text("\n".join(lines[:5]) + "\n" + lines[5][: len(lines[5]) // 2])
    second = _eval([str(test), *base, "--max-tokens", "3", "--json"])
    resumed = json.loads(second.stdout)
    assert resumed["usage"]["cached"] == 5 and resumed["usage"]["sent"] == 3
    assert resumed["metrics"] == report["metrics"]  # temperature 0: the same answers, nothing lost or doubled
    assert resumed["answered_in_run"] == 3
    assert len([ln for ln in cache.read_text().splitlines() if ln.strip().endswith("}")]) == 8


def test_eval_reports_a_bad_test_file_as_a_usage_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n')
    result = CliRunner().invoke(main, ["eval", str(bad), "-m", "x", "--base-url", "http://127.0.0.1:9/v1"])
    assert result.exit_code == 2 and "line 1: no assistant message" in result.output


def test_eval_in_process_needs_no_server(tiny_causal_lm: Path, tmp_path: Path) -> None:
    test = _write_test(tmp_path / "test.jsonl")
    out = tmp_path / "inproc"
    args = [str(test), "--in-process", "-m", str(tiny_causal_lm), "-o", str(out), "--max-tokens", "2", "--json"]
    report = json.loads(_eval([*args, "--no-plots"]).stdout)
    assert report["model"] == str(tiny_causal_lm) and report["n"] == 8 and report["failures"] == 0
    # In this process the engine's CPU time and memory are the model's own, so they are reported.
    assert report["cpu_s"] > 0 and report["cpu_s_per_1k"] > 0 and report["peak_rss_mb"] > 0
    assert report["usage"]["prompt_tokens"] > 0
    assert not (out / "confusion.png").exists() and (out / "report.md").is_file()


def test_compare_prepares_a_csv_and_trains_the_baseline_on_its_train_split(
    tiny_causal_lm: Path, tmp_path: Path
) -> None:
    csv_path = tmp_path / "tweets.csv"
    rows = ["text,label"] + [f'"{text} {i}",{label}' for i in range(4) for text, label in TWEETS]
    csv_path.write_text("\n".join(rows) + "\n")
    out = tmp_path / "cmp"
    args = ["compare", str(csv_path), "--text-col", "text", "--label-col", "label", "--split", "train=0.5,test=0.5"]
    args += ["-m", str(tiny_causal_lm), "--in-process", "--max-tokens", "2", "-o", str(out), "--no-plots", "--json"]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["n"] == 16 and [row["name"] for row in data["rows"]] == [str(tiny_causal_lm), "tfidf-logreg"]
    baseline = data["rows"][1]["report"]
    assert (
        baseline["metrics"]["labels"] == ["negative", "neutral", "positive"] and baseline["extra"]["kind"] == "baseline"
    )
    assert len(list((out / "cache").glob("*.jsonl"))) == 1  # one resume cache per model, none for the baseline
