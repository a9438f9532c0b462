"""Few-shot accuracy: localft's default (`model: "auto"`) beside TF-IDF + LR and frozen MiniLM + LR on the same
splits, with the published anchors and the targets it is held to.

    python -m benchmarks fewshot     LOCALFT_BENCH_SEEDS=0,1,2 (sampling seeds), LOCALFT_BENCH_ONLY=banking77,airline

Every benchmark runs through a real server (`bench_server`): upload, an `auto` fine-tuning job, then the test set
over `/v1/chat/completions`; the baselines are fitted on the same training file in this process. Each row is the
mean and spread over the sampling seeds, with the job's wall time (created -> finished), the p50 latency of an
answer and the process's peak RSS (server included).

Splits (from ../shared/datasets; seed s draws the training examples with `random.Random(s)`, label by label in
sorted order):
- `banking77`: 10 requests per intent (770), the full test set (3,080);
- `clinc150`: 10 requests per in-scope intent (1,500, from data_full.json's train), the in-scope test set (4,500);
- `emotion-8` / `emotion-64`: 8 / 64 texts per class (48 / 384), the test set (2,000);
- `airline`: the tutorial's 100 balanced tweets (34 neutral, 33 positive, 33 negative: the first in file order for
  seed 0, a shuffled order for other seeds), tested on the next 34/33/33 (100) and the next 100 per class (300);
  `airline-prompt` asks the same 100 test tweets with the tutorial's different test prompt (no system prompt, an
  instruction with the tweet after `tweet:`), as its own code does;
- `jigsaw`: the multi-label split of `bench_jigsaw` (400 train, 100 validation, 100 test; seed s shuffles the pools
  with `random_state=42+s`, the test set stays), scored by micro F1.
"""

from __future__ import annotations

import csv
import json
import os
import random
import resource
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks._harness import (
    DATASETS,
    RESULTS,
    Bench,
    bench_server,
    examples,
    failures_note,
    log,
    machine,
    publish_section,
    save_results,
    testset_from,
    write_chat_jsonl,
)
from benchmarks.bench_jigsaw import LABELS as JIGSAW_LABELS
from benchmarks.bench_jigsaw import POOLS, answer
from benchmarks.bench_jigsaw import SYSTEM as JIGSAW_SYSTEM
from localft.eval.baseline import BASELINE_NAME, EMBEDDING_BASELINE

Rows = list[tuple[str, str]]
AIRLINE_SYSTEM = "Classify the sentiment of this airline tweet: negative, neutral, positive."
AIRLINE_PROMPT = (
    "What is the sentiment expressed in the following tweet about an airline? Select sentiment value from "
    "positive, negative, or neutral. Return only the sentiment value in small letters. tweet: {text}"
)
"""The airline tutorial's test prompt, verbatim: it asks with this user message and no system prompt."""


@dataclass(frozen=True)
class Benchmark:
    name: str
    system: str
    anchor: str
    target: float
    """What localft's default must reach (mean over seeds)."""
    split: Callable[[int], dict[str, Rows]]
    """seed -> train, test (and validation) rows."""
    multi_label: bool = False


def _per_label(rows: Rows, k: int, seed: int) -> Rows:
    by_label: dict[str, list[str]] = defaultdict(list)
    for text, label in rows:
        by_label[label].append(text)
    rng = random.Random(seed)
    return [(text, label) for label in sorted(by_label) for text in rng.sample(by_label[label], k)]


def _csv(path: Path, text: str, label: str) -> Rows:
    with path.open(encoding="utf-8") as fh:
        return [(row[text], row[label]) for row in csv.DictReader(fh)]


def banking77(seed: int) -> dict[str, Rows]:
    folder = DATASETS / "banking77"
    return {
        "train": _per_label(_csv(folder / "train.csv", "text", "category"), 10, seed),
        "test": _csv(folder / "test.csv", "text", "category"),
    }


def clinc150(seed: int) -> dict[str, Rows]:
    full = json.loads((DATASETS / "clinc150" / "data_full.json").read_text())
    return {"train": _per_label([tuple(r) for r in full["train"]], 10, seed), "test": [tuple(r) for r in full["test"]]}


def _emotion(name: str) -> Rows:
    lines = (DATASETS / "emotion" / f"{name}.txt").read_text(encoding="utf-8").splitlines()[1:]
    return [(text, label) for text, label in (line.rsplit(";", 1) for line in lines)]


def emotion(k: int) -> Callable[[int], dict[str, Rows]]:
    return lambda seed: {"train": _per_label(_emotion("train"), k, seed), "test": _emotion("test")}


def airline(seed: int) -> dict[str, Rows]:
    by_label: dict[str, list[str]] = defaultdict(list)
    path = DATASETS / "twitter_airline_sentiment" / "Tweets.csv"
    for text, label in _csv(path, "text", "airline_sentiment"):
        by_label[label].append(text)
    train: Rows = []
    test100: Rows = []
    test300: Rows = []
    for label, quota in (("neutral", 34), ("positive", 33), ("negative", 33)):
        pool = list(by_label[label])
        if seed:
            random.Random(seed).shuffle(pool)
        train += [(t, label) for t in pool[:quota]]
        test100 += [(t, label) for t in pool[quota : 2 * quota]]
        test300 += [(t, label) for t in pool[quota : quota + 100]]
    return {"train": train, "test": test100, "test300": test300}


def jigsaw(seed: int) -> dict[str, Rows]:
    import pandas as pd

    ok = pd.read_csv(POOLS / "train.a.ok.1k.csv").sample(frac=1.0, random_state=42 + seed)
    bad = pd.read_csv(POOLS / "train.a.bad.1k.csv").sample(frac=1.0, random_state=42 + seed)
    test_ok = pd.read_csv(POOLS / "test.a.ok.200.csv").sample(n=50, random_state=42)
    test_bad = pd.read_csv(POOLS / "test.a.bad.200.csv").sample(n=50, random_state=42)

    def rows(frame: Any) -> Rows:
        return [(str(row["comment_text"]), answer(row)) for _, row in frame.iterrows()]

    train = pd.concat([ok.iloc[:200], bad.iloc[:200]]).sample(frac=1.0, random_state=0)
    validation = pd.concat([ok.iloc[200:250], bad.iloc[200:250]]).sample(frac=1.0, random_state=0)
    test = pd.concat([test_ok, test_bad]).sample(frac=1.0, random_state=0)
    return {"train": rows(train), "validation": rows(validation), "test": rows(test)}


BENCHMARKS = [
    Benchmark("banking77", "Classify the banking customer's request.", "CPFT 87.20%, ICDA 89.79%", 0.88, banking77),
    Benchmark("clinc150", "Classify the user's request.", "USE+ConveRT 93.26%, CPFT 94.18%", 0.942, clinc150),
    Benchmark("emotion-8", "Classify the emotion of this text.", "SetFit (MPNet) 48.8%", 0.55, emotion(8)),
    Benchmark("emotion-64", "Classify the emotion of this text.", "SetFit (MPNet) 76.2%", 0.78, emotion(64)),
    Benchmark("airline", AIRLINE_SYSTEM, "ft gpt-3.5 82%, ft gpt-4o-mini 78%", 0.82, airline),
    Benchmark("jigsaw", JIGSAW_SYSTEM, "before: 68.9% micro-F1", 0.75, jigsaw, multi_label=True),
]
EXTRA_TARGETS = {"airline test300": 0.80, "airline-prompt": 0.80}
"""Rows measured on another test set of a benchmark's models, and their targets."""


def _shifted(path: Path, rows: Rows) -> Path:
    """The tutorial's way of asking: its own instruction in the user message, no system prompt."""
    with path.open("w", encoding="utf-8") as fh:
        for text, label in rows:
            messages = [
                {"role": "user", "content": AIRLINE_PROMPT.format(text=text)},
                {"role": "assistant", "content": label},
            ]
            fh.write(json.dumps({"messages": messages}, ensure_ascii=False) + "\n")
    return path


def _labels(rows: Rows, multi_label: bool) -> list[str]:
    if multi_label:
        return list(JIGSAW_LABELS)
    return sorted({label for _, label in rows})


def run_one(bench: Bench, spec: Benchmark, seed: int) -> dict[str, dict[str, Any]]:
    """One seed of one benchmark: test name -> row name -> figures."""
    data = bench.workdir / "data" / f"{spec.name}-s{seed}"
    split = spec.split(seed)
    paths = {name: write_chat_jsonl(data / f"{name}.jsonl", rows, spec.system) for name, rows in split.items()}
    cpu_before = _cpu_s()
    tune = bench.fine_tune(
        "auto", paths["train"], suffix=f"{spec.name}-s{seed}", seed=seed, validation=paths.get("validation")
    )
    cpu_s = _cpu_s() - cpu_before
    job = bench.client.fine_tuning.jobs.retrieve(tune.job_id)
    classifier = str((job.hyperparameters.to_dict() or {}).get("classifier", "?"))
    labels = _labels(split["train"], spec.multi_label)
    tests = {spec.name: paths["test"]}
    if "test300" in paths:
        tests[f"{spec.name} test300"] = paths["test300"]
    if spec.name == "airline":
        tests["airline-prompt"] = _shifted(data / "test-prompt.jsonl", split["test"])
    out: dict[str, dict[str, Any]] = {}
    for test_name, path in tests.items():
        comparison = bench.compare(
            testset_from(path, labels, multi_label=spec.multi_label),
            [tune.model_id],
            train=examples(paths["train"]),
            training_times={tune.model_id: tune.train_s},
            tag=f"{test_name}-s{seed}".replace(" ", "-"),
            baselines=(BASELINE_NAME, EMBEDDING_BASELINE),
        )
        rows = {}
        for row in comparison.to_dict()["rows"]:
            name = "auto" if row["name"] == tune.model_id else row["name"]
            rows[name] = {
                "score": row["headline"],
                "train_s": row["train_s"],
                "p50_ms": 1000 * row["latency_p50_s"] if row["latency_p50_s"] is not None else None,
            }
        rows["auto"]["classifier"] = classifier
        rows["auto"]["p50_ms"] = _p50_one_at_a_time(bench, tune.model_id, path)
        if not tune.reused:  # a reused job's cost was measured by the run that trained it
            rows["auto"]["cpu_s"] = cpu_s
        rows["auto"]["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        out[test_name] = rows
        log(f"{test_name} seed {seed}: " + ", ".join(f"{k} {v['score']:.4f}" for k, v in rows.items()))
    return out


def _p50_one_at_a_time(bench: Bench, model: str, path: Path, n: int = 50) -> float:
    """The median latency (ms) of one request at a time over HTTP, after a few warm-up requests: what one user
    waits for an answer (the comparison's latencies are with several requests in flight)."""
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()[: n + 3]]
    times = []
    for record in records:
        messages = [m for m in record["messages"] if m["role"] != "assistant"]
        started = time.perf_counter()
        bench.client.chat.completions.create(model=model, messages=messages, temperature=0, max_tokens=16)
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times[3:])


def _cpu_s() -> float:
    """CPU seconds of this process (the embedded server's training included): unlike wall time, it hardly moves when
    other work shares the cores."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _mean_sd(values: list[float]) -> str:
    if not values:
        return "-"
    mean = 100 * statistics.mean(values)
    spread = f" ± {100 * statistics.stdev(values):.1f}" if len(values) > 1 else ""
    return f"{mean:.1f}%{spread}"


def render(results: dict[str, list[dict[str, Any]]], seeds: list[int]) -> list[str]:
    lines = [
        "## Few-shot accuracy: `auto` against the simple baselines and the published anchors",
        "",
        "Command: `python -m benchmarks fewshot` (each run adds its benchmarks and seeds to the table: "
        f"`LOCALFT_BENCH_ONLY`, `LOCALFT_BENCH_SEEDS`). Machine: {machine()}. Mean ± standard deviation over "
        f"sampling seeds {seeds} (`seeds`: how many a row has); the baselines are fitted on the same training file "
        "in the same run. `auto` is localft's default model (the OpenAI chat aliases resolve to it for "
        "classification data); train s is the job's wall time (created -> finished), train CPU s the CPU time the "
        "process spent meanwhile (on 2 idle cores the wall time lies between half of it and all of it), p50 the "
        "median latency of one request at a time over HTTP.",
        "",
        "| benchmark | published anchor | target | seeds | TF-IDF + LR | frozen MiniLM + LR | localft `auto` | met | "
        "train s | train CPU s | p50 ms | peak RSS MB | chosen (seed 0) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    anchors = {b.name: (b.anchor, b.target) for b in BENCHMARKS}
    anchors["airline test300"] = ("not published", EXTRA_TARGETS["airline test300"])
    anchors["airline-prompt"] = ("ft gpt-4o-mini 78%", EXTRA_TARGETS["airline-prompt"])
    for test_name, runs in results.items():
        anchor, target = anchors[test_name]
        by_row: dict[str, list[float]] = defaultdict(list)
        for run in runs:
            for row, figures in run.items():
                by_row[row].append(figures["score"])
        auto = [run["auto"] for run in runs]
        baseline_best = max(statistics.mean(by_row[BASELINE_NAME]), statistics.mean(by_row[EMBEDDING_BASELINE]))
        mean_auto = statistics.mean(by_row["auto"])
        met = "yes" if mean_auto >= target and mean_auto >= baseline_best else "no"
        train_s = statistics.mean(a["train_s"] for a in auto if a["train_s"] is not None)
        p50 = statistics.mean(a["p50_ms"] for a in auto if a["p50_ms"] is not None)
        cpu = [a["cpu_s"] for a in auto if "cpu_s" in a]
        cpu_s = f"{statistics.mean(cpu):.0f}" if cpu else "-"
        lines.append(
            f"| {test_name} | {anchor} | ≥ {100 * target:.1f}% | {len(runs)} | {_mean_sd(by_row[BASELINE_NAME])} | "
            f"{_mean_sd(by_row[EMBEDDING_BASELINE])} | {_mean_sd(by_row['auto'])} | {met} | {train_s:.0f} | {cpu_s} | "
            f"{p50:.0f} | {max(a['peak_rss_mb'] for a in auto):.0f} | {auto[0]['classifier']} |"
        )
    lines += [
        "",
        "`met` asks both: the target reached and no baseline above `auto`. Jigsaw's figures are micro F1; the others "
        "accuracy. `airline-prompt` scores the airline models on the tutorial's own test prompt (its instruction in "
        "the user message, no system prompt); localft reads the tweet back out of it (`base_models.prompt_shape`).",
        "",
    ]
    return lines


def _saved() -> dict[str, dict[str, Any]]:
    """Earlier runs' rows (test name -> seed -> rows), so benchmarks can be run one at a time
    (`LOCALFT_BENCH_ONLY`, `LOCALFT_BENCH_SEEDS`) and a long run that stops keeps what it measured."""
    path = RESULTS / "fewshot.json"
    return json.loads(path.read_text(encoding="utf-8")).get("runs", {}) if path.exists() else {}


def main() -> None:
    seeds = [int(s) for s in os.environ.get("LOCALFT_BENCH_SEEDS", "0,1,2").split(",")]
    only = [s for s in os.environ.get("LOCALFT_BENCH_ONLY", "").split(",") if s]
    chosen = [b for b in BENCHMARKS if not only or b.name in only]
    runs = _saved()
    with bench_server("fewshot") as bench:
        for spec in chosen:
            for seed in seeds:
                for test_name, rows in run_one(bench, spec, seed).items():
                    earlier = runs.setdefault(test_name, {}).get(str(seed), {}).get("auto", {})
                    for kept in ("cpu_s", "peak_rss_mb"):  # from the run that trained a reused job
                        if kept in earlier and "cpu_s" not in rows["auto"]:
                            rows["auto"][kept] = earlier[kept]
                    runs[test_name][str(seed)] = rows
                save_results("fewshot", {"runs": runs})
        failures = failures_note(bench)
    order = [name for name in _test_names() if runs.get(name)]
    results = {name: [runs[name][seed] for seed in sorted(runs[name], key=int)] for name in order}
    measured = sorted({int(seed) for by_seed in runs.values() for seed in by_seed})
    publish_section("fewshot", render(results, measured), failures)


def _test_names() -> list[str]:
    names = []
    for spec in BENCHMARKS:
        names.append(spec.name)
        names += [
            extra for extra in EXTRA_TARGETS if extra.startswith(f"{spec.name} ") or extra.startswith(f"{spec.name}-")
        ]
    return names


if __name__ == "__main__":
    main()
