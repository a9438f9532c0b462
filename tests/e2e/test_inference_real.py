"""The inference engine on the real built-in models (slow tier, about 1-3 minutes).

SmolLM2-135M-Instruct with LoRA adapters and all-MiniLM-L6-v2 with a classification head, asked about real airline
tweets. Adapters and heads are freshly initialised (training quality is the training tests' business): what is
checked here is what the engine guarantees for any weights — answers inside the label set, probabilities summing
to 1, temperature 0 deterministic, seeded sampling repeatable, zero-shot enums for base models, shared base weights.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from localft.base_models import local_model_dir
from localft.inference.engine import InferenceEngine
from localft.inference.precision import compute_dtype
from localft.inference.types import ChatRequest, ModelArtifact
from localft.training.checkpoint import CheckpointMeta, write_meta

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
TEST_MODEL_CACHE = REPO / ".localft-test-cache"  # shared with tests/conftest.py: conversions happen once
LABELS = ["negative", "neutral", "positive"]
SYSTEM = "Classify the sentiment of the airline tweet as negative, neutral or positive."
ENUM_FORMAT = {
    "type": "json_schema",
    "json_schema": {
        "name": "sentiment",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {"sentiment": {"type": "string", "enum": LABELS}},
            "required": ["sentiment"],
            "additionalProperties": False,
        },
    },
}


@pytest.fixture(scope="module")
def tweets() -> list[str]:
    path = REPO.parent / "shared" / "datasets" / "twitter_airline_sentiment" / "Tweets.csv"
    if not path.is_file():
        pytest.skip(f"dataset not found at {path}")
    with path.open(newline="", encoding="utf-8") as f:
        return [row["text"] for _, row in zip(range(6), csv.DictReader(f), strict=False)]


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Base folders, two LoRA checkpoints of SmolLM2 and a MiniLM classifier checkpoint, plus one engine."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    torch.set_num_threads(1)  # on a shared, busy 2-core machine one thread was several times faster than two
    tmp = tmp_path_factory.mktemp("real-inference")
    smol = local_model_dir("smollm2-135m-instruct", TEST_MODEL_CACHE)
    minilm = local_model_dir("minilm-l6", TEST_MODEL_CACHE)
    adapters = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        folder = tmp / f"lora-{seed}"
        config = LoraConfig(r=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False, lora_alpha=8)
        get_peft_model(AutoModelForCausalLM.from_pretrained(smol), config).save_pretrained(folder / "adapter")
        AutoTokenizer.from_pretrained(smol).save_pretrained(folder / "tokenizer")
        meta = CheckpointMeta("smollm2-135m-instruct", "causal_lm", "classification", 1, 1, labels=LABELS)
        write_meta(folder, meta)
        adapters.append(folder)
    head = tmp / "minilm-head"
    AutoModelForSequenceClassification.from_pretrained(minilm, num_labels=3).save_pretrained(head / "model")
    AutoTokenizer.from_pretrained(minilm).save_pretrained(head / "tokenizer")
    write_meta(head, CheckpointMeta("minilm-l6", "encoder", "classification", 1, 1, labels=LABELS, max_length=128))
    engine = InferenceEngine(TEST_MODEL_CACHE, device="cpu")
    return {"smol": smol, "adapters": adapters, "head": head, "engine": engine}


def ask(text: str, **kwargs: Any) -> ChatRequest:
    return ChatRequest([{"role": "system", "content": SYSTEM}, {"role": "user", "content": text}], **kwargs)


def check_labels(choice: Any, labels: list[str]) -> None:
    assert choice.label_probs is not None and set(choice.label_probs) == set(labels)
    assert math.isclose(sum(choice.label_probs.values()), 1.0, abs_tol=1e-6)


def test_smollm2_classifier_labels_valid_probabilities_sum_to_one(real: dict[str, Any], tweets: list[str]) -> None:
    engine: InferenceEngine = real["engine"]
    artifact = ModelArtifact("ft:smol", "smollm2-135m-instruct", real["adapters"][0])
    for text in tweets:
        result = engine.chat(artifact, ask(text, temperature=0, logprobs=True, top_logprobs=3))
        (choice,) = result.choices
        assert choice.content in LABELS
        check_labels(choice, LABELS)
        assert choice.logprobs is not None
        assert math.isclose(sum(math.exp(t.logprob) for t in choice.logprobs[0].top_logprobs), 1.0, abs_tol=1e-6)
    again = [engine.chat(artifact, ask(t, temperature=0)).choices[0].content for t in tweets[:3]]
    assert again == [engine.chat(artifact, ask(t, temperature=0)).choices[0].content for t in tweets[:3]]
    sampled = ask(tweets[0], temperature=1.0, n=5, seed=42)
    first = [c.content for c in engine.chat(artifact, sampled).choices]
    assert first == [c.content for c in engine.chat(artifact, sampled).choices]
    assert set(first) <= set(LABELS)


def test_smollm2_base_zero_shot_with_enum_schema(real: dict[str, Any], tweets: list[str]) -> None:
    engine: InferenceEngine = real["engine"]
    base = ModelArtifact("gpt-4o-mini-2024-07-18", "gpt-4o-mini-2024-07-18")
    for text in tweets[:6]:
        (choice,) = engine.chat(base, ask(text, temperature=0, response_format=ENUM_FORMAT)).choices
        assert json.loads(choice.content)["sentiment"] in LABELS
        check_labels(choice, LABELS)


def test_smollm2_base_generates_freely(real: dict[str, Any]) -> None:
    engine: InferenceEngine = real["engine"]
    base = ModelArtifact("smollm2-135m-instruct", "smollm2-135m-instruct")
    request = ChatRequest([{"role": "user", "content": "Name one colour."}], temperature=0, max_tokens=8)
    first, second = engine.chat(base, request), engine.chat(base, request)
    assert first.choices[0].content == second.choices[0].content and first.choices[0].content.strip()
    assert 0 < first.completion_tokens <= 8


def test_adapters_share_the_real_base(real: dict[str, Any], tweets: list[str]) -> None:
    engine: InferenceEngine = real["engine"]
    one, two = (ModelArtifact(f"ft:{i}", "smollm2-135m-instruct", path) for i, path in enumerate(real["adapters"]))
    p1 = engine.chat(one, ask(tweets[1], temperature=0)).choices[0].label_probs
    p2 = engine.chat(two, ask(tweets[1], temperature=0)).choices[0].label_probs
    assert p1 != p2
    assert engine.loaded.count(str(Path(real["smol"]).resolve())) == 1
    # Weights are held in bf16 on CPUs with native bf16, else in fp32: one base's worth, not one per adapter.
    one_base = 135_000_000 * torch.empty((), dtype=compute_dtype("cpu")).element_size()
    assert engine.memory_bytes < 1.5 * one_base


def test_minilm_classifier_and_zero_shot(real: dict[str, Any], tweets: list[str]) -> None:
    engine: InferenceEngine = real["engine"]
    head = ModelArtifact("ft:minilm", "minilm-l6", real["head"])
    base = ModelArtifact("minilm-l6", "minilm-l6")
    for text in tweets:
        (choice,) = engine.chat(head, ask(text, temperature=0)).choices
        assert choice.content in LABELS
        check_labels(choice, LABELS)
        (zero,) = engine.chat(base, ask(text, temperature=0, response_format=ENUM_FORMAT)).choices
        assert json.loads(zero.content)["sentiment"] in LABELS
        check_labels(zero, LABELS)
