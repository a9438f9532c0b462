"""What `"auto"` should mean: a sweep of learning rate and epochs on small real datasets, in-process.

    .venv/bin/python -m benchmarks.bench_defaults [--family causal_lm encoder] [--datasets airline emotion]
                                                  [--grid MULT:EPOCHS ...] [--seed 0]

Each run fine-tunes a built-in model with `run_training` (the engine the server's worker calls) on a small
balanced training set and reads the classification accuracy of the epoch-end validation, which scores the labels
exactly as inference does, on a held-out set. The grid is a list of `learning_rate_multiplier:n_epochs` pairs
("auto" allowed for either); batch size stays "auto". Prints one Markdown row per run as it finishes.
Datasets: `airline` = the tutorial's 100 balanced training tweets, validated on the next 50 of each class (150);
`emotion` = the first 20 of each of the 6 classes of emotion/train.txt, validated on the first 150 of emotion/val.txt.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._harness import ENCODER, LLM, RecordingSink, dataset_rows, write_chat_jsonl
from localft.training import Hyperparameters, TrainSpec, run_training

SYSTEMS = {
    "airline": "Classify the sentiment of this airline tweet. Answer with one word: negative, neutral or positive.",
    "emotion": "Classify the emotion of this text. Answer with one word: sadness, joy, love, anger, fear or surprise.",
}
DEFAULT_GRID = ["auto:auto", "2.5:auto", "5:auto", "10:auto", "5:6"]


def airline_split(held_out_per_class: int = 50) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The tutorial's 100 training tweets (the first 34/33/33 of each class) and the next N of each class."""
    quota = {"neutral": 34, "positive": 33, "negative": 33}
    by_label: dict[str, list[tuple[str, str]]] = {label: [] for label in quota}
    for row in dataset_rows("twitter_airline_sentiment/Tweets.csv"):
        by_label[row["airline_sentiment"]].append((row["text"], row["airline_sentiment"]))
    train = [row for label, n in quota.items() for row in by_label[label][:n]]
    valid = [row for label, n in quota.items() for row in by_label[label][n : n + held_out_per_class]]
    return train, valid


def emotion() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    def read(name: str) -> list[tuple[str, str]]:
        return [(row["text"], row["label_name"]) for row in dataset_rows(f"emotion/{name}", delimiter=";")]

    train: list[tuple[str, str]] = []
    counts: dict[str, int] = {}
    for text, label in read("train.txt"):
        if counts.get(label, 0) < 20:
            train.append((text, label))
            counts[label] = counts.get(label, 0) + 1
    return train, read("val.txt")[:150]


LOADERS = {"airline": airline_split, "emotion": emotion}


def _value(raw: str) -> Any:
    return raw if raw == "auto" else float(raw) if "." in raw else int(raw)


def run(family: str, dataset: str, grid: list[str], seed: int) -> None:
    base = LLM if family == "causal_lm" else ENCODER
    train, valid = LOADERS[dataset]()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        train_file = write_chat_jsonl(folder / "train.jsonl", train, SYSTEMS[dataset])
        valid_file = write_chat_jsonl(folder / "valid.jsonl", valid, SYSTEMS[dataset])
        for i, cell in enumerate(grid):
            multiplier, epochs = (_value(part) for part in cell.split(":"))
            hp = Hyperparameters(n_epochs=epochs, learning_rate_multiplier=multiplier)
            sink = RecordingSink()
            started = time.perf_counter()
            spec = TrainSpec(base, train_file, folder / f"run{i}", valid_file, hp, seed=seed)
            run_training(spec, sink)
            wall = time.perf_counter() - started
            setup = next((line for line in sink.lines if line.startswith("Training ")), "")
            m = sink.metrics
            accuracy = m.classification.get("accuracy") if m else None
            macro = m.classification.get("macro_f1") if m else None
            print(
                f"| {base} | {dataset} ({len(train)} train / {len(valid)} valid) | {cell} | "
                f"{setup.split(': ', 1)[-1]} | {accuracy:.3f} | {macro:.3f} | {m.full_valid_loss:.3f} | {wall:.0f} |"
                if m and accuracy is not None and macro is not None and m.full_valid_loss is not None
                else f"| {base} | {dataset} | {cell} | no metrics |",
                flush=True,
            )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", nargs="*", default=["causal_lm", "encoder"], choices=["causal_lm", "encoder"])
    parser.add_argument("--datasets", nargs="*", default=list(LOADERS), choices=list(LOADERS))
    parser.add_argument("--grid", nargs="*", default=DEFAULT_GRID, help="learning_rate_multiplier:n_epochs pairs")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args([] if argv is None else argv)  # `python -m benchmarks NAME` keeps its own argv
    print("| model | data | multiplier:epochs | resolved | accuracy | macro F1 | valid loss | wall s |")
    print("|---|---|---|---|---|---|---|---|")
    for family in args.family:
        for dataset in args.datasets:
            run(family, dataset, args.grid, args.seed)


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
