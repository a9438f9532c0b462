"""Checkpoints written by `localft.training.run_training` serve as trained: same template, same label scoring.

Training's full validation and the engine score labels the same way, so the engine's accuracy on the validation
set must match the accuracy training recorded in the checkpoint (bf16 rounding may flip a near-tie).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from localft.inference.engine import InferenceEngine
from localft.inference.types import ChatRequest, ModelArtifact
from localft.training import Hyperparameters, TrainSpec, run_training
from localft.training.checkpoint import read_checkpoint
from localft.training.interfaces import CheckpointInfo, EventLevel, StepMetrics

SENTIMENT = {
    "positive": ["the flight was great thanks", "great flight thanks", "thanks the flight was great"],
    "negative": ["my bag was lost again", "lost my bag again", "the bag was lost"],
    "neutral": ["a neutral question about the gate", "a question about the gate", "question about the gate"],
}
SYSTEM = "Classify the sentiment."


class QuietSink:
    def log(self, message: str, level: EventLevel = "info") -> None: ...

    def log_metrics(self, metrics: StepMetrics) -> None: ...

    def on_checkpoint(self, checkpoint: CheckpointInfo) -> None: ...

    def should_stop(self) -> bool:
        return False


def examples(prefix: str) -> list[tuple[str, str, dict[str, object]]]:
    rows = []
    for label, texts in SENTIMENT.items():
        for text in texts:
            messages = [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": text},
                {"role": "assistant", "content": prefix + label},
            ]
            rows.append((text, label, {"messages": messages}))
    return rows


def train(base: Path, tmp_path: Path, prefix: str, epochs: int, lr: float) -> Path:
    rows = examples(prefix)
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for _, _, r in rows * 2))
    valid = tmp_path / "valid.jsonl"
    valid.write_text("".join(json.dumps(r) + "\n" for _, _, r in rows))
    hp = Hyperparameters(n_epochs=epochs, batch_size=4, learning_rate_multiplier=lr)
    spec = TrainSpec(
        base_model=str(base), training_file=data, validation_file=valid, output_dir=tmp_path / "out", hyperparameters=hp
    )
    return run_training(spec, QuietSink()).final_checkpoint


def ask(text: str, **kwargs: object) -> ChatRequest:
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": text}]
    return ChatRequest(messages, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("family", ["causal_lm", "classifier"])
def test_engine_reproduces_training_validation(
    family: str, tiny_causal_lm: Path, tiny_encoder: Path, tmp_path: Path, engine: InferenceEngine
) -> None:
    base = tiny_causal_lm if family == "causal_lm" else tiny_encoder  # an encoder trains into a pooled classifier
    checkpoint = train(base, tmp_path, "Sentiment: ", epochs=2, lr=20.0 if family == "causal_lm" else 30.0)
    meta = read_checkpoint(checkpoint)
    assert meta.family == family and sorted(meta.labels) == sorted(SENTIMENT)
    artifact = ModelArtifact("ft:tiny", str(base), checkpoint)
    correct = 0
    for text, label, _ in examples(""):
        (choice,) = engine.chat(artifact, ask(text, temperature=0)).choices
        assert choice.label_probs is not None
        assert math.isclose(sum(choice.label_probs.values()), 1.0, abs_tol=1e-6)
        assert choice.content.startswith("Sentiment: ") and choice.content[len("Sentiment: ") :] in SENTIMENT
        correct += choice.content == "Sentiment: " + label
    recorded = next(v for k, v in meta.metrics.items() if k.endswith("accuracy") and "token" not in k)
    assert abs(correct / 9 - recorded) <= 1 / 9 + 1e-9


def test_partial_prefix_after_training(tiny_causal_lm: Path, tmp_path: Path, engine: InferenceEngine) -> None:
    checkpoint = train(tiny_causal_lm, tmp_path, "Sentiment: ", epochs=1, lr=20.0)
    request = ChatRequest(
        [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": "lost my bag again"},
            {"role": "assistant", "content": "Sentiment:"},
        ],
        temperature=0,
    )
    (choice,) = engine.chat(ModelArtifact("ft:tiny", str(tiny_causal_lm), checkpoint), request).choices
    assert choice.content in {" " + label for label in SENTIMENT}
