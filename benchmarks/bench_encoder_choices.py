"""Encoder fine-tuning choices that buy speed, against what they cost in accuracy: paired runs on real datasets.

    .venv/bin/python -m benchmarks.bench_encoder_choices [--choice attention-dropout|hidden-dropout|word-embeddings]
                                                         [--datasets airline sst2 ...] [--seeds 0 1 2]

Each choice is a switch of `localft.training.encoder_head` with two arms: `attention-dropout` drops 10% of the
attention weights as MiniLM's config asks, or none (`ATTENTION_DROPOUT`); `hidden-dropout` likewise for the hidden
states (`HIDDEN_DROPOUT`); `word-embeddings` trains the word embedding matrix or freezes it
(`TRAIN_WORD_EMBEDDINGS`). Each dataset is fine-tuned with `run_training` (the engine
the worker calls, `auto` hyperparameters) once per seed and arm, the two arms back to back with the same seed, so a
pair differs only in the choice. The score is the last epoch's validation (accuracy for single-label data, micro F1
for Jigsaw's multi-label; the engine scores a seeded sample of 500 where the validation file is larger); prints one
Markdown row per run as it finishes, then the mean of each arm and of the paired differences per dataset. The speed
side of each choice is `bench_training --alternate CHOICE --only minilm-l6`.

Datasets (from ../shared/datasets, validation held out from training):
`airline` 600 tweets (200 per class) / the next 600; `sst2` the first 600 of train.tsv / dev.tsv (872);
`emotion` the first 600 of train.txt / the first 600 of val.txt; `banking77` 10 requests per intent (770) / 10 per
intent of test.csv (770); `jigsaw` 400 comments (200 with a label, 200 without) / 300 more (150 and 150), multi-label.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks._harness import ENCODER, REPO, RecordingSink, dataset_rows, write_chat_jsonl
from benchmarks.bench_jigsaw import POOLS
from benchmarks.bench_jigsaw import answer as jigsaw_answer
from localft.training import Hyperparameters, TrainSpec, run_training

Rows = list[tuple[str, str]]
CACHE = REPO / ".localft-test-cache"
CHOICES: dict[str, tuple[str, dict[str, Any]]] = {
    "attention-dropout": ("ATTENTION_DROPOUT", {"0.1 (MiniLM's)": None, "0 (localft)": 0.0}),
    "word-embeddings": ("TRAIN_WORD_EMBEDDINGS", {"trained": True, "frozen": False}),
    "hidden-dropout": ("HIDDEN_DROPOUT", {"0.1 (MiniLM's)": None, "0": 0.0}),
}
"""Choice -> the `encoder_head` setting it flips, and its two arms (name -> value); the learner reads the setting
when it loads the model."""


def _per_label(rows: Rows, quota: int, skip: int = 0) -> Rows:
    taken: dict[str, int] = defaultdict(int)
    picked = []
    for text, label in rows:
        taken[label] += 1
        if skip < taken[label] <= skip + quota:
            picked.append((text, label))
    return picked


def airline() -> tuple[Rows, Rows]:
    rows = [(row["text"], row["airline_sentiment"]) for row in dataset_rows("twitter_airline_sentiment/Tweets.csv")]
    return _per_label(rows, 200), _per_label(rows, 200, skip=200)


def sst2() -> tuple[Rows, Rows]:
    def read(name: str) -> Rows:
        rows = dataset_rows(f"sst2/{name}", delimiter="\t", quoting=csv.QUOTE_NONE)
        return [(row["sentence"].strip(), "positive" if row["label"] == "1" else "negative") for row in rows]

    return read("train.tsv")[:600], read("dev.tsv")


def emotion() -> tuple[Rows, Rows]:
    def read(name: str) -> Rows:
        return [(row["text"], row["label_name"]) for row in dataset_rows(f"emotion/{name}", delimiter=";")]

    return read("train.txt")[:600], read("val.txt")[:600]


def banking77() -> tuple[Rows, Rows]:
    def read(name: str) -> Rows:
        return [(row["text"], row["category"]) for row in dataset_rows(f"banking77/{name}")]

    return _per_label(read("train.csv"), 10), _per_label(read("test.csv"), 10)


def jigsaw() -> tuple[Rows, Rows]:
    def rows(frame: pd.DataFrame) -> Rows:
        return [(str(row["comment_text"]), jigsaw_answer(row)) for _, row in frame.iterrows()]

    ok = pd.read_csv(POOLS / "train.a.ok.1k.csv").sample(frac=1.0, random_state=7)
    bad = pd.read_csv(POOLS / "train.a.bad.1k.csv").sample(frac=1.0, random_state=7)
    train = pd.concat([ok.iloc[:200], bad.iloc[:200]]).sample(frac=1.0, random_state=0)
    valid = pd.concat([ok.iloc[200:350], bad.iloc[200:350]]).sample(frac=1.0, random_state=0)
    return rows(train), rows(valid)


LOADERS: dict[str, Callable[[], tuple[Rows, Rows]]] = {
    "airline": airline,
    "sst2": sst2,
    "emotion": emotion,
    "banking77": banking77,
    "jigsaw": jigsaw,
}
SYSTEM = "Classify the text."
"""Encoders read the user messages only (`base_models.templates.encoder_text`): the system prompt is a formality."""


def _score(sink: RecordingSink) -> float | None:
    metrics = sink.metrics.classification if sink.metrics else {}
    return metrics.get("accuracy", metrics.get("micro_f1"))


def run(choice: str, dataset: str, seeds: list[int], scores: dict[tuple[str, str], list[float]]) -> None:
    import localft.training.encoder_head as encoder_head

    setting, arms = CHOICES[choice]
    train, valid = LOADERS[dataset]()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        train_file = write_chat_jsonl(folder / "train.jsonl", train, SYSTEM)
        valid_file = write_chat_jsonl(folder / "valid.jsonl", valid, SYSTEM)
        for seed in seeds:
            for arm, value in arms.items():
                setattr(encoder_head, setting, value)
                sink = RecordingSink()
                started = time.perf_counter()
                out = folder / f"{seed}-{arm}"
                spec = TrainSpec(ENCODER, train_file, out, valid_file, Hyperparameters(), seed=seed, cache_dir=CACHE)
                run_training(spec, sink)
                score = _score(sink)
                if score is not None:
                    scores[(dataset, arm)].append(score)
                cell = f"{score:.4f}" if score is not None else "no metrics"
                wall = time.perf_counter() - started
                print(f"| {dataset} ({len(train)} / {len(valid)}) | {seed} | {arm} | {cell} | {wall:.0f} |", flush=True)


def summary(choice: str, datasets: list[str], scores: dict[tuple[str, str], list[float]]) -> None:
    first, second = CHOICES[choice][1]
    print(f"\n| data | {first} mean | {second} mean | paired difference, mean (min, max) |\n|---|---|---|---|")
    for dataset in datasets:
        a, b = scores[(dataset, first)], scores[(dataset, second)]
        if not a or len(a) != len(b):
            continue
        diffs = [y - x for x, y in zip(a, b, strict=True)]
        print(
            f"| {dataset} | {statistics.mean(a):.4f} | {statistics.mean(b):.4f} | "
            f"{statistics.mean(diffs):+.4f} ({min(diffs):+.4f}, {max(diffs):+.4f}) |"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--choice", nargs="*", default=list(CHOICES), choices=list(CHOICES))
    parser.add_argument("--datasets", nargs="*", default=list(LOADERS), choices=list(LOADERS))
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    args = parser.parse_args([] if argv is None else argv)  # `python -m benchmarks NAME` keeps its own argv
    for choice in args.choice:
        print(f"\n{choice}:\n\n| data (train / valid) | seed | arm | validation score | wall s |")
        print("|---|---|---|---|---|")
        scores: dict[tuple[str, str], list[float]] = defaultdict(list)
        for dataset in args.datasets:
            run(choice, dataset, args.seeds, scores)
        summary(choice, args.datasets, scores)


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
