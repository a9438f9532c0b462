"""Test sets, answer parsing, reports (JSON/Markdown/PNG) and the TF-IDF baseline on fixed inputs."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from localft.errors import InvalidRequestError
from localft.eval.baseline import fit_baseline, run_baseline
from localft.eval.report import build_report
from localft.eval.runner import NO_ANSWER, Prediction, RunResult, label_probs
from localft.eval.testset import AnswerFormat, load_testset, read_examples
from localft.remote import CallStats


def _write(path: Path, rows: list[tuple[str, str]], system: str | None = None) -> Path:
    with path.open("w") as fh:
        for text, answer in rows:
            messages: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
            messages += [{"role": "user", "content": text}, {"role": "assistant", "content": answer}]
            fh.write(json.dumps({"messages": messages}) + "\n")
    return path


def _run(answers: list[str], errors: frozenset[int] = frozenset()) -> RunResult:
    preds = [
        Prediction(NO_ANSWER, error="InternalServerError") if i in errors else Prediction(a, latency_s=0.1 * (i + 1))
        for i, a in enumerate(answers)
    ]
    stats = CallStats(requests=len(answers), sent=len(answers), failures=len(errors))
    return RunResult("m", preds, wall_s=2.0, cpu_s=1.0, peak_rss_mb=100.0, stats=stats)


def test_single_label_report_counts_out_of_set_and_failures(tmp_path: Path) -> None:
    rows = [("great", "positive"), ("bad", "negative"), ("meh", "neutral"), ("ok", "neutral"), ("wow", "positive")]
    ts = load_testset(_write(tmp_path / "t.jsonl", rows, system="classify"))
    assert ts.labels == ["negative", "neutral", "positive"] and not ts.multi_label
    assert ts.examples[0].messages == [{"role": "system", "content": "classify"}, {"role": "user", "content": "great"}]
    report = build_report(ts, _run(["positive", " negative\n", "Neutral", "neutral", "x"], errors=frozenset({4})))
    m = report.metrics
    assert m.accuracy == pytest.approx(3 / 5)  # "Neutral" is not neutral in exact mode, the failure is wrong
    assert m.out_of_set == {"Neutral": 1, NO_ANSWER: 1}
    assert report.failures == 1 and report.answered_in_run == 4
    assert report.cpu_s_per_1k == pytest.approx(250.0)
    assert report.latency.p50_s == pytest.approx(0.25)
    written = report.save(tmp_path / "out")
    names = sorted(p.name for p in written)
    assert names == ["confusion.png", "per_class_f1.png", "predictions.jsonl", "report.json", "report.md"]
    for png in ("confusion.png", "per_class_f1.png"):
        assert (tmp_path / "out" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads((tmp_path / "out" / "report.json").read_text())
    assert data["metrics"]["accuracy"] == pytest.approx(0.6) and data["failures"] == 1
    md = (tmp_path / "out" / "report.md").read_text()
    assert "'Neutral'" in md and "Confusion matrix" in md and "| neutral |" in md
    lines = (tmp_path / "out" / "predictions.jsonl").read_text().splitlines()
    assert json.loads(lines[4])["error"] == "InternalServerError"
    assert [json.loads(line)["correct"] for line in lines] == [True, True, False, True, False]


def test_lenient_normalisation_maps_only_exact_label_spellings() -> None:
    fmt = AnswerFormat(normalize="lenient", prefix="Sentiment:")
    labels = ["negative", "neutral", "positive"]
    assert fmt.parse_single("Sentiment: Positive.", labels) == "positive"
    assert fmt.parse_single('"NEUTRAL"', labels) == "neutral"
    assert fmt.parse_single("positive, I think", labels) == "positive, I think"  # never guessed


def test_multilabel_testset_and_report(tmp_path: Path) -> None:
    rows = [("a", "toxic,insult"), ("b", "none"), ("c", "obscene"), ("d", "toxic")]
    ts = load_testset(_write(tmp_path / "t.jsonl", rows))
    assert ts.multi_label and ts.labels == ["insult", "obscene", "toxic"]
    assert ts.gold_multi() == [["insult", "toxic"], [], ["obscene"], ["toxic"]]
    report = build_report(ts, _run(["insult, toxic", "none", "obscene,rude", "none"]))
    m = report.metrics
    assert report.task == "multi_label" and m.out_of_set == {"rude": 1}
    assert m.exact_match == pytest.approx(2 / 4)
    assert report.headline == pytest.approx(m.micro_f1) == pytest.approx(2 * 3 / (2 * 3 + 0 + 1))
    written = report.save(tmp_path / "ml")
    assert "confusion.png" not in [p.name for p in written] and (tmp_path / "ml" / "per_class_f1.png").exists()
    assert "Hamming loss" in (tmp_path / "ml" / "report.md").read_text()


def test_bad_test_files_name_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]}\n{oops\n')
    with pytest.raises(InvalidRequestError, match=r"bad.jsonl:2: invalid JSON"):
        read_examples(bad)
    bad.write_text('{"messages": [{"role": "user", "content": "no answer"}]}\n')
    with pytest.raises(InvalidRequestError, match="line 1: no assistant message"):
        read_examples(bad)


def test_label_probs_from_top_logprobs_skip_ambiguous_tokens() -> None:
    labels = ["negative", "neutral", "positive"]
    choice = {
        "logprobs": {
            "content": [
                {
                    "token": "pos",
                    "logprob": -0.1,
                    "top_logprobs": [
                        {"token": "pos", "logprob": -0.5},
                        {"token": " negative", "logprob": -1.5},
                        {"token": "ne", "logprob": -2.0},  # shared by negative and neutral: ambiguous
                        {"token": "hello", "logprob": -3.0},
                    ],
                }
            ]
        }
    }
    probs = label_probs(choice, labels)
    assert probs is not None and set(probs) == {"positive", "negative"}
    assert probs["positive"] == pytest.approx(1 / (1 + 2.718281828 ** (-1.0)), rel=1e-6)
    assert label_probs({"label_probs": {"a": 0.7, "b": 0.3}}, ["a", "b"]) == {"a": 0.7, "b": 0.3}
    assert label_probs({"logprobs": None}, labels) is None


def _airline(datasets: Path, n: int, skip: int = 0) -> list[tuple[str, str]]:
    with (datasets / "twitter_airline_sentiment" / "Tweets.csv").open(newline="", encoding="utf-8") as fh:
        rows = [(r["text"], r["airline_sentiment"]) for r in csv.DictReader(fh)]
    return rows[skip : skip + n]


def test_tfidf_baseline_on_airline_tweets_beats_the_majority_answer(tmp_path: Path, datasets: Path) -> None:
    train = read_examples(_write(tmp_path / "train.jsonl", _airline(datasets, 2000)))
    ts = load_testset(_write(tmp_path / "test.jsonl", _airline(datasets, 500, skip=2000)))
    baseline = fit_baseline(train, ts)
    report = build_report(ts, run_baseline(baseline, ts))
    gold = ts.gold_single()
    majority = max(gold.count(label) for label in set(gold)) / len(gold)
    # Always answering the majority class would score `majority` accuracy and a macro F1 below 0.3.
    assert report.metrics.accuracy > majority and report.metrics.macro_f1 > 0.4
    assert report.metrics.n_out_of_set == 0 and report.failures == 0
    assert baseline.train_s > 0 and baseline.model_mb > 0 and report.cpu_s_per_1k is not None
    assert all(abs(sum(r["label_probs"].values()) - 1) < 1e-6 for r in report.rows)


def test_tfidf_baseline_multi_label_on_jigsaw_pools(tmp_path: Path, datasets: Path) -> None:
    labels = ["toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"]

    def rows(name: str, n: int) -> list[tuple[str, str]]:
        with (datasets / "jigsaw_toxic" / "data_pools" / name).open(newline="", encoding="utf-8") as fh:
            found = [
                (r["comment_text"], ",".join(x for x in labels if r[x] == "1") or "none") for r in csv.DictReader(fh)
            ]
        return found[:n]

    train = read_examples(
        _write(tmp_path / "train.jsonl", rows("train.a.ok.1k.csv", 150) + rows("train.a.bad.1k.csv", 150))
    )
    test_rows = rows("test.a.ok.200.csv", 40) + rows("test.a.bad.200.csv", 40)
    ts = load_testset(_write(tmp_path / "test.jsonl", test_rows), labels=labels, multi_label=True)
    report = build_report(ts, run_baseline(fit_baseline(train, ts), ts))
    m = report.metrics
    assert report.task == "multi_label" and m.n == 80 and m.n_out_of_set == 0
    assert m.per_label["toxic"].support == sum("toxic" in a.split(",") for _, a in test_rows)
    # Better than answering "none" everywhere (micro F1 0) and than flagging everything as toxic only.
    assert m.micro_f1 > 0.3 and m.exact_match > 0.4
    assert all(set(r["label_probs"]) == set(labels) for r in report.rows)
