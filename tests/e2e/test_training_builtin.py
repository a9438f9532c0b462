"""Fine-tuning the real built-in models on real airline tweets (slow tier, a few minutes on 2 cores).

SmolLM2-135M-Instruct (LoRA) must beat its own zero-shot accuracy on held-out tweets, scored the way inference scores
labels, and its checkpoint must serve labels inside the label set with probabilities summing to 1. MiniLM-L6 (a
classification head) must beat chance, and a run interrupted after its first epoch and resumed must end with the
weights of the uninterrupted run.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from localft.errors import TrainingCancelled
from localft.training import Hyperparameters, TrainSpec, run_training
from localft.training.checkpoint import read_checkpoint

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / ".localft-test-cache"
LABELS = ["negative", "neutral", "positive"]
SYSTEM = "Classify the sentiment of the airline tweet as negative, neutral or positive."


class Sink:
    def __init__(self, stop_after_checkpoints: int | None = None) -> None:
        self.metrics: list[Any] = []
        self.checkpoints: list[Any] = []
        self.stop_after = stop_after_checkpoints

    def log(self, message: str, level: str = "info") -> None: ...

    def log_metrics(self, metrics: Any) -> None:
        self.metrics.append(metrics)

    def on_checkpoint(self, checkpoint: Any) -> None:
        self.checkpoints.append(checkpoint)

    def should_stop(self) -> bool:
        return self.stop_after is not None and len(self.checkpoints) >= self.stop_after


def tweet_files(datasets: Path, folder: Path, n_train: int, n_valid: int) -> tuple[Path, Path]:
    """Balanced chat JSONL files: `n_train` and `n_valid` tweets per class, disjoint."""
    per_class: dict[str, list[str]] = {label: [] for label in LABELS}
    with (datasets / "twitter_airline_sentiment" / "Tweets.csv").open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            bucket = per_class[row["airline_sentiment"]]
            if len(bucket) < n_train + n_valid:
                bucket.append(row["text"])
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, part in (("train", slice(0, n_train)), ("valid", slice(n_train, n_train + n_valid))):
        groups = zip(*(per_class[label][part] for label in LABELS), strict=True)
        rows = [_record(text, label) for group in groups for label, text in zip(LABELS, group, strict=True)]
        path = folder / f"{name}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        paths.append(path)
    return paths[0], paths[1]


def _record(text: str, label: str) -> dict[str, Any]:
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": text}]
    return {"messages": [*messages, {"role": "assistant", "content": label}]}


def zero_shot_accuracy(valid: Path) -> float:
    """SmolLM2 before fine-tuning, scoring the three labels after each prompt (a fresh adapter changes nothing)."""
    from localft.base_models import local_model_dir
    from localft.base_models.templates import template_kind
    from localft.training.dataset import ChatEncoder, read_examples
    from localft.training.lora_causal import CausalLearner
    from localft.training.run import _load_tokenizer
    from localft.training.task import detect_task

    examples = read_examples(valid)
    folder = local_model_dir("smollm2-135m-instruct", CACHE)
    tokenizer = _load_tokenizer(folder)
    task = detect_task([ex.answer for ex in examples])
    learner = CausalLearner(folder, tokenizer, ChatEncoder(tokenizer, template_kind(tokenizer), 512), task, "cpu")
    predicted = learner.predict([ex.context for ex in examples])
    return sum(p == ex.answer for p, ex in zip(predicted, examples, strict=True)) / len(examples)


def test_smollm2_lora_beats_zero_shot_and_serves_valid_labels(datasets: Path, tmp_path: Path) -> None:
    torch.set_num_threads(1)  # on a busy 2-core machine a second thread mostly waits for the first
    train, valid = tweet_files(datasets, tmp_path / "data", n_train=30, n_valid=10)
    baseline = zero_shot_accuracy(valid)
    sink = Sink()
    spec = TrainSpec(
        base_model="smollm2-135m-instruct",  # the tutorials' alias runs `auto`, which picks among encoders
        training_file=train,
        validation_file=valid,
        output_dir=tmp_path / "out",
        hyperparameters=Hyperparameters(n_epochs=2),
        cache_dir=CACHE,
    )
    result = run_training(spec, sink)

    assert len(sink.checkpoints) == 2 and all(c.path.is_dir() for c in sink.checkpoints)
    meta = read_checkpoint(result.final_checkpoint)
    assert meta.base_model == "smollm2-135m-instruct" and meta.labels == LABELS
    accuracy = result.metrics.classification["accuracy"] if result.metrics else 0.0
    assert accuracy > baseline, f"fine-tuned {accuracy:.2f} vs zero-shot {baseline:.2f}"

    from localft.inference.engine import InferenceEngine
    from localft.inference.types import ChatRequest, ModelArtifact

    engine = InferenceEngine(CACHE, device="cpu")
    artifact = ModelArtifact("ft:test", meta.base_model, result.final_checkpoint)
    for line in valid.read_text().splitlines()[:6]:
        messages = json.loads(line)["messages"][:-1]
        choice = engine.chat(artifact, ChatRequest(messages, temperature=0)).choices[0]
        assert choice.content in LABELS
        assert choice.label_probs is not None and math.isclose(sum(choice.label_probs.values()), 1.0, abs_tol=1e-5)


def minilm_spec(train: Path, valid: Path, out: Path, resume_from: Path | None = None) -> TrainSpec:
    return TrainSpec(
        base_model="minilm-l6",
        training_file=train,
        validation_file=valid,
        output_dir=out,
        hyperparameters=Hyperparameters(n_epochs=3, batch_size=16),
        resume_from=resume_from,
        cache_dir=CACHE,
        seed=3,
    )


def test_minilm_head_learns_and_resume_matches_uninterrupted(datasets: Path, tmp_path: Path) -> None:
    torch.set_num_threads(1)  # on a busy 2-core machine a second thread mostly waits for the first
    train, valid = tweet_files(datasets, tmp_path / "data", n_train=60, n_valid=20)
    full = run_training(minilm_spec(train, valid, tmp_path / "full"), Sink())
    assert full.metrics is not None and full.metrics.classification["accuracy"] > 0.5  # chance is 1/3

    stopping = Sink(stop_after_checkpoints=1)
    with pytest.raises(TrainingCancelled):
        run_training(minilm_spec(train, valid, tmp_path / "part"), stopping)
    resumed = run_training(minilm_spec(train, valid, tmp_path / "part", stopping.checkpoints[0].path), Sink())

    assert resumed.steps == full.steps
    a = load_file(full.final_checkpoint / "model" / "model.safetensors")
    b = load_file(resumed.final_checkpoint / "model" / "model.safetensors")
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-4, atol=1e-5)
