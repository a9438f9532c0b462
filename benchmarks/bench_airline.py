"""Airline tweets sentiment, the fine-tuning tutorial's protocol and the full-data protocol.

Tutorial protocol: 100 balanced training tweets (34 neutral, 33 positive, 33 negative, the first of each class
in file order), tested on the next 34/33/33 (100) and, for a steadier figure, on the next 100 of each class (300).
Published: fine-tuned gpt-4o-mini 78%, fine-tuned gpt-3.5-turbo 82% (100-tweet test). Three training seeds give a
mean and spread. Full-data protocol: a stratified 80/20 split of all 14,640 tweets (seed 42); published figures
there are about 81.6% for TF-IDF + logistic regression and 86-87% for a fine-tuned RoBERTa.

    python -m benchmarks airline     LOCALFT_BENCH_SEEDS=1: one seed; LOCALFT_BENCH_FULL=0: no full-data protocol,
                                     LOCALFT_BENCH_FULL=baseline: full data with the TF-IDF baseline only,
                                     LOCALFT_BENCH_FULL=llm: full data with the fine-tuned LLM (one epoch; the
                                     encoder and TF-IDF rows are kept from the last saved run),
                                     LOCALFT_BENCH_TUTORIAL=saved: the tutorial protocol's tables come from the
                                     last run's benchmarks/results/airline.json (only the full data runs)
"""

from __future__ import annotations

import json
import os
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
from sklearn.model_selection import train_test_split

from benchmarks._harness import (
    DATASETS,
    ENCODER,
    LLM,
    RESULTS,
    Bench,
    bench_command,
    bench_server,
    comparison_table,
    examples,
    failures_note,
    llm_enabled,
    log,
    pct,
    save_results,
    testset_from,
    write_chat_jsonl,
    write_section,
)
from localft.eval.compare import Comparison

LABELS = ["negative", "neutral", "positive"]
SYSTEM = "Classify the sentiment of this airline tweet. Answer with one word: negative, neutral or positive."
TRAIN_QUOTA = {"neutral": 34, "positive": 33, "negative": 33}
PUBLISHED_TUTORIAL = {"fine-tuned gpt-4o-mini": "78%", "fine-tuned gpt-3.5-turbo": "82%"}
ENCODER_VALIDATION = (
    "Encoder jobs also get a validation file (10 held-out tweets per class, after the 300-tweet test) for their "
    "epoch-end metrics; LLM jobs train without one, as in the tutorial."
)
PUBLISHED_FULL = {"TF-IDF + logistic regression": "~81.6%", "fine-tuned RoBERTa": "~86-87%"}


def _tweets() -> pd.DataFrame:
    frame = pd.read_csv(DATASETS / "twitter_airline_sentiment" / "Tweets.csv")
    return frame[["text", "airline_sentiment"]].dropna()


def _rows(frame: pd.DataFrame) -> list[tuple[str, str]]:
    return list(zip(frame["text"].astype(str), frame["airline_sentiment"].astype(str), strict=True))


def tutorial_splits(frame: pd.DataFrame) -> dict[str, list[tuple[str, str]]]:
    """train (100), test100 (next 34/33/33), test300 (next 100 per class), all in file order per class; and
    validation: 10 per class after those, for the encoder jobs only (see ENCODER_VALIDATION)."""
    train, test100, test300, validation = [], [], [], []
    for label, quota in TRAIN_QUOTA.items():
        rows = _rows(frame[frame["airline_sentiment"] == label])
        train += rows[:quota]
        test100 += rows[quota : quota + quota]
        test300 += rows[quota : quota + 100]
        validation += rows[quota + 100 : quota + 110]
    return {"train": train, "test100": test100, "test300": test300, "validation": validation}


def _mean_spread(values: list[float]) -> str:
    if len(values) == 1:
        return pct(values[0])
    return f"{pct(statistics.mean(values))} ± {100 * statistics.stdev(values):.1f} (n={len(values)})"


def run_tutorial(bench: Bench, seeds: list[int], results: dict[str, Any], publish: Callable[[], None]) -> None:
    """The baseline, then per seed and model kind: fine-tune, score on both tests, publish. The seed-0 rows make
    the detailed tables; every seed feeds the mean and spread. Fills `results` in place so `publish` sees it."""
    splits = tutorial_splits(_tweets())
    data = bench.workdir / "data"
    paths = {name: write_chat_jsonl(data / f"{name}.jsonl", rows, SYSTEM) for name, rows in splits.items()}
    tests = {name: testset_from(paths[name], LABELS) for name in ("test100", "test300")}
    per_kind: dict[str, dict[str, list[float]]] = {}
    results.update(seeds=seeds, runs=[], summary=per_kind, comparisons={}, paths={k: str(v) for k, v in paths.items()})

    def record(comparison: Comparison, test_name: str, seed: int | None, detailed: bool) -> None:
        if detailed:
            results["comparisons"].setdefault(test_name, Comparison(comparison.testset, comparison.task, comparison.n))
            results["comparisons"][test_name].rows.extend(comparison.rows)
        for row in comparison.rows:
            per_kind.setdefault(row.kind, {}).setdefault(test_name, []).append(row.report.headline)
        results["runs"].append({"seed": seed, "test": test_name, **comparison.to_dict()})

    train = examples(paths["train"])
    for test_name, testset in tests.items():
        record(
            bench.compare(testset, [], train=train, training_times={}, tag=f"tfidf-{test_name}"), test_name, None, True
        )
    for seed in seeds:
        for base, kind in ((LLM, "llm"), (ENCODER, "enc")):
            validation = paths["validation"] if base == ENCODER else None
            tune = bench.try_fine_tune(
                base, paths["train"], suffix=f"air100-{kind}-s{seed}", seed=seed, validation=validation
            )
            if tune is None:
                continue
            for test_name, testset in tests.items():
                comparison = bench.compare(
                    testset,
                    [tune.model_id],
                    train=None,
                    training_times={tune.model_id: tune.train_s},
                    tag=f"tutorial-s{seed}-{kind}-{test_name}",
                    cache_tag=f"tutorial-s{seed}",  # test300 contains test100: its answers are reused
                )
                record(comparison, test_name, seed, seed == seeds[0])
                publish()


def saved_tutorial() -> dict[str, Any]:
    """The tutorial protocol's results as the last full run saved them (its detailed tables as saved dicts)."""
    saved = json.loads((RESULTS / "airline.json").read_text())["tutorial"]
    saved.setdefault("command", "LOCALFT_BENCH_FULL=baseline python -m benchmarks airline")  # 2026-11-22, unsaved then
    return {**saved, "comparisons": saved.pop("comparisons_seed0")}


def add_zero_shot(bench: Bench, tutorial: dict[str, Any]) -> None:
    """The base model asked zero-shot, on the 100-tweet test only: generation costs seconds of CPU per tweet."""
    path = Path(tutorial["paths"]["test100"])
    zero = bench.compare(testset_from(path, LABELS), [LLM], train=None, training_times={}, tag="zero-shot-test100")
    tutorial["comparisons"]["test100"].rows.insert(0, zero.rows[0])
    row = zero.rows[0]
    tutorial["summary"].setdefault(row.kind, {})["test100"] = [row.report.headline]
    tutorial["runs"].append({"seed": None, "test": "test100", **zero.to_dict()})


def saved_full_rows() -> list[dict[str, Any]]:
    """The full-data rows of the last saved run (read before this run's first save replaces them)."""
    path = RESULTS / "airline.json"
    full = json.loads(path.read_text()).get("full") if path.exists() else None
    return list(full["comparison"]["rows"]) if full else []


def run_full(bench: Bench, saved_rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The full-data protocol; in `LOCALFT_BENCH_FULL=llm` mode `saved_rows` give the encoder and TF-IDF rows."""
    frame = _tweets()
    train_frame, test_frame = train_test_split(
        frame, test_size=0.2, stratify=frame["airline_sentiment"], random_state=42
    )
    data = bench.workdir / "data"
    train_path = write_chat_jsonl(data / "full-train.jsonl", _rows(train_frame), SYSTEM)
    test_path = write_chat_jsonl(data / "full-test.jsonl", _rows(test_frame), SYSTEM)
    # The validation file comes out of the training 80% (the first 300 rows of its shuffled order).
    paths_valid = write_chat_jsonl(data / "full-validation.jsonl", _rows(train_frame.iloc[:300]), SYSTEM)
    mode = os.environ.get("LOCALFT_BENCH_FULL", "1")
    if mode == "llm":
        # One epoch of 11,712 tweets (about 0.9M training tokens) is already over an hour of CPU here.
        tune = bench.try_fine_tune(
            LLM, train_path, suffix="airfull-llm-s0", seed=0, validation=paths_valid, hyperparameters={"n_epochs": 1}
        )
    elif mode != "baseline":
        tune = bench.try_fine_tune(ENCODER, train_path, suffix="airfull-enc-s0", seed=0, validation=paths_valid)
    else:
        tune = None
    tunes = [tune] if tune is not None else []
    comparison = bench.compare(
        testset_from(test_path, LABELS),
        [t.model_id for t in tunes],
        train=None if mode == "llm" else examples(train_path),
        training_times={t.model_id: t.train_s for t in tunes},
        tag="full",
    )
    measured = comparison.to_dict()
    if mode == "llm":  # the saved encoder and TF-IDF rows join this run's LLM row
        measured["rows"] += [row for row in saved_rows if row["kind"] != "fine-tuned LLM"]
    return {
        "mode": mode,
        "baseline_only": mode == "baseline",
        "n_train": len(train_frame),
        "n_test": len(test_frame),
        "comparison": measured,
        "table": comparison_table(measured, PUBLISHED_FULL),
    }


def shortfall(summary: dict[str, dict[str, list[float]]]) -> str:
    """How far the best localft fine-tune is from the published fine-tuned GPT figures, in accuracy points."""
    tuned = {kind: statistics.mean(v["test100"]) for kind, v in summary.items() if kind.startswith("fine-tuned")}
    if not tuned:
        return "No localft fine-tune was measured in this run, so there is no comparison with the published figures."
    kind, best = max(tuned.items(), key=lambda item: item[1])
    parts = []
    for name, figure in PUBLISHED_TUTORIAL.items():
        gap = 100 * best - float(figure.rstrip("%"))
        parts.append(f"{abs(gap):.1f} points {'below' if gap < 0 else 'above'} {name} ({figure})")
    gaps = ", ".join(parts)
    return f"The best localft fine-tune here ({kind}, {pct(best)} on the 100-tweet test) is {gaps}."


def render(tutorial: dict[str, Any], full: dict[str, Any] | None, command: str, failures: str) -> str:
    lines = [
        "### 1. Airline tweets (sentiment, 3 classes)",
        "",
        f"Command: `{command}`. Data: `Tweets.csv` (14,640 tweets). Every model below was fine-tuned and queried",
        "through the OpenAI-compatible API of an embedded localft server; `auto` hyperparameters unless stated.",
        ENCODER_VALIDATION,
        "The system prompt lists the three labels, in training and in testing (zero-shot included). Answers are",
        "matched leniently (`Negative.` counts as `negative`; anything else that is not exactly a label is wrong).",
        "",
        "**Tutorial protocol** (100 balanced training tweets, the first 34 neutral / 33 positive / 33 negative)"
        + (f", measured by `{tutorial['command']}`" if tutorial.get("command", command) != command else "")
        + ".",
        f"Mean ± standard deviation over training seeds {tutorial['seeds']}:",
        "",
        "| model | 100-tweet test | 300-tweet test |",
        "|---|---|---|",
    ]
    for kind, by_test in tutorial["summary"].items():
        test300 = _mean_spread(by_test["test300"]) if "test300" in by_test else "not measured"
        lines.append(f"| {kind} | {_mean_spread(by_test['test100'])} | {test300} |")
    for name, figure in PUBLISHED_TUTORIAL.items():
        lines.append(f"| {name} (published, 100-tweet test) | {figure} | not published |")
    lines += ["", shortfall(tutorial["summary"])]
    tables = {name: comparison_table(c) for name, c in tutorial["comparisons"].items()}
    lines += ["", "Seed 0 in detail, 100-tweet test:", "", tables["test100"], ""]
    lines += ["Seed 0 in detail, 300-tweet test:", "", tables["test300"], ""]
    if full is None:
        lines += ["**Full-data protocol**: not measured in this run.", ""]
    else:
        lines += [
            f"**Full-data protocol** (stratified 80/20, seed 42: {full['n_train']} train, {full['n_test']} test).",
            *_full_scope(full),
            "",
            full["table"],
            "",
        ]
    return "\n".join(lines) + ("\n" + failures if failures else "")


def _full_scope(full: dict[str, Any]) -> list[str]:
    """What the full-data table holds and what it leaves out."""
    if full.get("mode") == "llm":
        return [
            "The fine-tuned LLM ran one epoch (`n_epochs: 1`; `auto` would give 2) with the 300-tweet validation",
            "file; the encoder and TF-IDF rows are kept from the last run that measured them.",
        ]
    return [
        "The fine-tuned LLM was not run on the full data here (`LOCALFT_BENCH_FULL=llm` runs it: over an hour of",
        "CPU per epoch on 2 cores)."
        + (" The encoder was not run either (`LOCALFT_BENCH_FULL=baseline`)." if full["baseline_only"] else ""),
    ]


def main() -> None:
    seeds = list(range(int(os.environ.get("LOCALFT_BENCH_SEEDS", "3"))))
    command = bench_command("airline")
    full: dict[str, Any] | None = None

    def publish() -> None:
        # Written after each stage, so an interrupted run still leaves what it measured.
        data = {k: v for k, v in tutorial.items() if k != "comparisons"}
        data["comparisons_seed0"] = {
            k: c if isinstance(c, dict) else c.to_dict() for k, c in tutorial["comparisons"].items()
        }
        save_results("airline", {"tutorial": data, "full": full, "failures": bench.failures})
        write_section("airline", render(tutorial, full, command, failures_note(bench)))
        log("airline: wrote BENCHMARKS.md and benchmarks/results/airline.json")

    tutorial: dict[str, Any] = {}
    saved = os.environ.get("LOCALFT_BENCH_TUTORIAL") == "saved"
    saved_rows = saved_full_rows()  # publish() below rewrites the results file
    with bench_server("airline") as bench:
        if saved:
            tutorial = saved_tutorial()
        else:
            tutorial["command"] = command
            run_tutorial(bench, seeds, tutorial, publish)
        publish()
        if os.environ.get("LOCALFT_BENCH_FULL", "1") != "0":
            full = run_full(bench, saved_rows)
            publish()
        if llm_enabled() and not saved:  # last: zero-shot generation is the slowest part
            add_zero_shot(bench, tutorial)
            publish()


if __name__ == "__main__":
    main()
