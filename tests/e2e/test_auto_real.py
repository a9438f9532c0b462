"""`model: "auto"` on real data with the built-in encoders: never below the strongest simple baseline, and
`localft train`'s default, with the candidates' table and a summary over the whole test file."""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from localft.api.server import EmbeddedServer
from localft.cli import main

pytestmark = pytest.mark.slow

CACHE = Path(__file__).resolve().parents[2] / ".localft-test-cache"
SYSTEM = "Classify the sentiment of this airline tweet: negative, neutral, positive."


def airline(datasets: Path) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The tutorial's 100 balanced training tweets (the first of each class) and the next 100 per class to test."""
    by_label: dict[str, list[str]] = defaultdict(list)
    with (datasets / "twitter_airline_sentiment" / "Tweets.csv").open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            by_label[row["airline_sentiment"]].append(row["text"])
    train, test = [], []
    for label, quota in (("neutral", 34), ("positive", 33), ("negative", 33)):
        train += [(t, label) for t in by_label[label][:quota]]
        test += [(t, label) for t in by_label[label][quota : quota + 100]]
    return train, test


def write(path: Path, rows: list[tuple[str, str]]) -> Path:
    with path.open("w", encoding="utf-8") as fh:
        for text, label in rows:
            messages = [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": text},
                {"role": "assistant", "content": label},
            ]
            fh.write(json.dumps({"messages": messages}) + "\n")
    return path


def test_auto_is_at_least_the_frozen_embedding_baseline(datasets: Path, tmp_path: Path) -> None:
    """On the tutorial's airline split, `auto` (scored on its training file alone) against frozen MiniLM + logistic
    regression, the strongest simple method, fitted on the same 100 tweets and scored on the same 300."""
    from sklearn.linear_model import LogisticRegression

    from localft.base_models import local_model_dir
    from localft.classifier.model import load_encoder_features
    from localft.inference.engine import InferenceEngine
    from localft.inference.types import ChatRequest, ModelArtifact
    from localft.training import TrainSpec, run_training
    from localft.training.interfaces import CheckpointInfo, EventLevel, StepMetrics

    class Sink:
        def __init__(self) -> None:
            self.messages: list[str] = []

        def log(self, message: str, level: EventLevel = "info") -> None:
            self.messages.append(message)

        def log_metrics(self, metrics: StepMetrics) -> None: ...

        def on_checkpoint(self, checkpoint: CheckpointInfo) -> None: ...

        def should_stop(self) -> bool:
            return False

    train, test = airline(datasets)
    spec = TrainSpec(
        base_model="auto", training_file=write(tmp_path / "train.jsonl", train), output_dir=tmp_path / "out",
        cache_dir=CACHE,
    )  # fmt: skip
    sink = Sink()
    result = run_training(spec, sink)
    engine = InferenceEngine(CACHE)
    artifact = ModelArtifact("ft:auto", "auto", result.final_checkpoint)
    answers = [
        engine.chat(artifact, ChatRequest([{"role": "system", "content": SYSTEM}, {"role": "user", "content": t}],
                                          temperature=0)).choices[0].content
        for t, _ in test
    ]  # fmt: skip
    auto = float(np.mean([a == gold for a, (_, gold) in zip(answers, test, strict=True)]))

    features = load_encoder_features(local_model_dir("minilm-l6", CACHE), "cpu", 256)
    probe = LogisticRegression(C=100, max_iter=2000).fit(features.embed([t for t, _ in train]), [g for _, g in train])
    baseline = float(np.mean(probe.predict(features.embed([t for t, _ in test])) == [g for _, g in test]))
    chose = next(m for m in sink.messages if m.startswith("auto: classifiers scored"))
    assert auto >= baseline, f"auto {auto:.3f} < frozen MiniLM + LR {baseline:.3f}\n{chose}"


def test_train_without_a_model_runs_auto_and_scores_the_whole_test_file(
    live_server: EmbeddedServer, datasets: Path, tmp_path: Path
) -> None:
    train, test = airline(datasets)
    train_csv, test_file = tmp_path / "train.csv", write(tmp_path / "test.jsonl", test[:250])
    with train_csv.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "sentiment"])
        writer.writerows(train[:60])
    args = ["train", str(train_csv), "--text-col", "text", "--label-col", "sentiment", "--system", SYSTEM]
    args += ["--test-file", str(test_file), "-o", str(tmp_path / "prepared"), "--base-url", live_server.base_url]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "(auto)" in result.output
    assert "auto: classifiers scored" in result.output and "auto: chose " in result.output
    assert "Evaluating on 250 held-out examples" in result.output  # the whole file, not a first slice
    assert "single-label)" in result.output and "accuracy" in result.output
