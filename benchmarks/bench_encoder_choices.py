"""Encoder fine-tuning choices judged by the accuracy they give: paired runs on real datasets.

    .venv/bin/python -m benchmarks.bench_encoder_choices [--choice attention-dropout|hidden-dropout|word-embeddings|
                                                          min-steps|probe-c] [--datasets airline sst2 ...]
                                                         [--seeds 0 1 2] [--values 100 250 ...] [--min-steps N]
                                                         [--multiplier M]

Each choice is a module-level setting of the training engine, with two or more arms: `attention-dropout` drops 10% of
the attention weights as MiniLM's config asks, or none (`encoder_head.ATTENTION_DROPOUT`); `hidden-dropout` likewise for
the hidden states (`encoder_head.HIDDEN_DROPOUT`); `word-embeddings` trains the word embedding matrix or freezes it
(`encoder_head.TRAIN_WORD_EMBEDDINGS`); `min-steps` is the number of optimizer steps an encoder's `auto` epochs add up
to at least (`auto.MIN_ENCODER_STEPS`); `probe-c` is the inverse regularisation of the logistic regression the head
starts from (`encoder_head.PROBE_C`). For these two
`--values` picks the arms; `--min-steps` sets `auto.MIN_ENCODER_STEPS` for every arm of the other choices. Each dataset
is fine-tuned with `run_training` (the engine the worker calls, `auto` hyperparameters; `--multiplier` sets
`learning_rate_multiplier` for every arm) once per seed and arm, the arms back to back with the same seed, so runs of
one seed differ only in the choice. The score is the last epoch's validation (accuracy for single-label data, micro F1
for Jigsaw's multi-label; the engine scores a seeded sample of 500 where the validation file is larger); prints one
Markdown row per run as it finishes, then per dataset the mean of each arm and the paired differences of each arm from
the first. The speed side of the encoder_head choices is `bench_training --alternate CHOICE --only minilm-l6`.

Datasets (from ../shared/datasets, validation held out from training):
`airline` 600 tweets (200 per class) / the next 600; `sst2` the first 600 of train.tsv / dev.tsv (872);
`emotion` the first 600 of train.txt / the first 600 of val.txt; `banking77` 10 requests per intent (770) / 10 per
intent of test.csv (770); `jigsaw` 400 comments (200 with a label, 200 without) / 300 more (150 and 150), multi-label;
`clinc150` 5 requests per intent (750, the 150 in-scope intents of data_full.json) / 5 per intent of its validation
split; `emotion-2000` the first 2000 of train.txt / the first 600 of val.txt; `airline-100` and `emotion-120` the
tutorial-sized sets of `bench_defaults` (100 / 150, 120 / 150). The last four run only when named.
"""

from __future__ import annotations

import argparse
import csv
import importlib
import json
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks._harness import DATASETS, ENCODER, REPO, RecordingSink, dataset_rows, write_chat_jsonl
from benchmarks.bench_defaults import airline_split
from benchmarks.bench_defaults import emotion as tutorial_emotion
from benchmarks.bench_jigsaw import POOLS
from benchmarks.bench_jigsaw import answer as jigsaw_answer
from localft.training import Hyperparameters, TrainSpec, run_training

Rows = list[tuple[str, str]]
CACHE = REPO / ".localft-test-cache"


@dataclass(frozen=True)
class Choice:
    """A setting of a `localft.training` module and its arms (name -> value), the first the reference; `held` are
    other settings of the same module that every arm runs with. The engine reads these settings when a run starts."""

    module: str
    setting: str
    arms: dict[str, Any]
    held: dict[str, Any] = field(default_factory=dict)


CHOICES = {
    "attention-dropout": Choice("encoder_head", "ATTENTION_DROPOUT", {"0.1 (MiniLM's)": None, "0 (localft)": 0.0}),
    "word-embeddings": Choice("encoder_head", "TRAIN_WORD_EMBEDDINGS", {"trained": True, "frozen": False}),
    "hidden-dropout": Choice("encoder_head", "HIDDEN_DROPOUT", {"0.1 (MiniLM's)": None, "0": 0.0}),
    "min-steps": Choice("auto", "MIN_ENCODER_STEPS", {"100": 100, "250": 250, "400": 400}),
    "probe-c": Choice("encoder_head", "PROBE_C", {"1": 1.0, "10": 10.0, "100": 100.0}),
}
NUMERIC: dict[str, Callable[[float], Any]] = {"min-steps": int, "probe-c": float}
"""The choices whose arms `--values` can set, and the type of their setting."""


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


def _emotion_rows(name: str) -> Rows:
    return [(row["text"], row["label_name"]) for row in dataset_rows(f"emotion/{name}", delimiter=";")]


def emotion() -> tuple[Rows, Rows]:
    return _emotion_rows("train.txt")[:600], _emotion_rows("val.txt")[:600]


def emotion_2000() -> tuple[Rows, Rows]:
    return _emotion_rows("train.txt")[:2000], _emotion_rows("val.txt")[:600]


def banking77() -> tuple[Rows, Rows]:
    def read(name: str) -> Rows:
        return [(row["text"], row["category"]) for row in dataset_rows(f"banking77/{name}")]

    return _per_label(read("train.csv"), 10), _per_label(read("test.csv"), 10)


def clinc150() -> tuple[Rows, Rows]:
    splits = json.loads((DATASETS / "clinc150" / "data_full.json").read_text())
    return _per_label([tuple(row) for row in splits["train"]], 5), _per_label([tuple(row) for row in splits["val"]], 5)


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
    "clinc150": clinc150,
    "emotion-2000": emotion_2000,
    "airline-100": airline_split,
    "emotion-120": tutorial_emotion,
}
STUDY = ["airline", "sst2", "emotion", "banking77", "jigsaw"]
"""The datasets a study runs unless told otherwise; the others ask if a finding holds for bigger or smaller files."""
SYSTEM = "Classify the text."
"""Encoders read the user messages only (`base_models.templates.encoder_text`): the system prompt is a formality."""


def _score(sink: RecordingSink) -> float | None:
    metrics = sink.metrics.classification if sink.metrics else {}
    return metrics.get("accuracy", metrics.get("micro_f1"))


def run(
    choice: str,
    dataset: str,
    seeds: list[int],
    scores: dict[tuple[str, str], list[float]],
    arms: dict[str, Any],
    hparams: Hyperparameters,
) -> None:
    chosen = CHOICES[choice]
    module = importlib.import_module(f"localft.training.{chosen.module}")
    originals = {name: getattr(module, name) for name in (chosen.setting, *chosen.held)}
    train, valid = LOADERS[dataset]()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        train_file = write_chat_jsonl(folder / "train.jsonl", train, SYSTEM)
        valid_file = write_chat_jsonl(folder / "valid.jsonl", valid, SYSTEM)
        for seed in seeds:
            for arm, value in arms.items():
                for name, setting in {**chosen.held, chosen.setting: value}.items():
                    setattr(module, name, setting)
                sink = RecordingSink()
                started = time.perf_counter()
                out = folder / f"{seed}-{arm}"
                spec = TrainSpec(ENCODER, train_file, out, valid_file, hparams, seed=seed, cache_dir=CACHE)
                try:
                    result = run_training(spec, sink)
                finally:
                    for name, original in originals.items():
                        setattr(module, name, original)
                score = _score(sink)
                if score is not None:
                    scores[(dataset, arm)].append(score)
                cell = f"{score:.4f}" if score is not None else "no metrics"
                wall = time.perf_counter() - started
                epochs = result.hyperparameters["n_epochs"]
                print(
                    f"| {dataset} ({len(train)} / {len(valid)}) | {seed} | {arm} | {epochs} | {cell} | {wall:.0f} |",
                    flush=True,
                )


def summary(datasets: list[str], scores: dict[tuple[str, str], list[float]], arms: dict[str, Any]) -> None:
    first, *others = arms
    header = ["data", f"{first} mean", *(f"{arm} mean | {arm} - {first}, mean (min, max)" for arm in others)]
    print(f"\n| {' | '.join(header)} |\n|---|---|" + "---|---|" * len(others))
    for dataset in datasets:
        reference = scores[(dataset, first)]
        if not reference or any(len(scores[(dataset, arm)]) != len(reference) for arm in others):
            continue
        cells = [f"{statistics.mean(reference):.4f}"]
        for arm in others:
            diffs = [y - x for x, y in zip(reference, scores[(dataset, arm)], strict=True)]
            cells.append(f"{statistics.mean(scores[(dataset, arm)]):.4f}")
            cells.append(f"{statistics.mean(diffs):+.4f} ({min(diffs):+.4f}, {max(diffs):+.4f})")
        print(f"| {dataset} | " + " | ".join(cells) + " |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--choice", nargs="*", default=list(CHOICES), choices=list(CHOICES))
    parser.add_argument("--datasets", nargs="*", default=STUDY, choices=list(LOADERS))
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    parser.add_argument("--values", nargs="*", type=float, help="min-steps, probe-c: the values to compare")
    parser.add_argument("--min-steps", type=int, help="the other choices: auto.MIN_ENCODER_STEPS for every arm")
    parser.add_argument("--multiplier", type=float, help="learning_rate_multiplier for every run [auto]")
    args = parser.parse_args([] if argv is None else argv)  # `python -m benchmarks NAME` keeps its own argv
    if args.min_steps is not None:
        import localft.training.auto as auto

        auto.MIN_ENCODER_STEPS = args.min_steps
    for choice in args.choice:
        print(f"\n{choice}:\n\n| data (train / valid) | seed | arm | epochs | validation score | wall s |")
        print("|---|---|---|---|---|---|")
        scores: dict[tuple[str, str], list[float]] = defaultdict(list)
        arms = CHOICES[choice].arms
        if choice in NUMERIC and args.values:
            arms = {f"{value:g}": NUMERIC[choice](value) for value in args.values}
        hparams = Hyperparameters(learning_rate_multiplier=args.multiplier or "auto")
        for dataset in args.datasets:
            run(choice, dataset, args.seeds, scores, arms, hparams)
        summary(args.datasets, scores, arms)


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
