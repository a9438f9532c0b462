"""int8 inference: which models it applies to, that answers stay close to float, that LoRA adapters still share
one quantized base, and that the memory accounting sees the smaller weights."""

import math
from pathlib import Path
from typing import Any

import pytest

from localft.inference import precision
from localft.inference.engine import InferenceEngine
from localft.inference.types import ChatRequest, ModelArtifact

SENTIMENTS = ["positive", "negative", "neutral"]
TEXTS = ["the flight was great thanks", "my bag was lost again", "a neutral question about the gate"]
pytestmark = pytest.mark.skipif(not precision.int8_available(), reason="this torch has no int8 CPU kernel")


def ask(text: str) -> ChatRequest:
    return ChatRequest([{"role": "user", "content": text}], temperature=0)


@pytest.mark.parametrize(
    ("policy", "family", "device", "native_bf16", "expected"),
    [
        ("auto", "encoder", "cpu", False, True),
        ("auto", "encoder", "cpu", True, False),
        ("auto", "causal_lm", "cpu", False, False),
        ("on", "causal_lm", "cpu", True, True),
        ("off", "encoder", "cpu", False, False),
        ("on", "encoder", "cuda:0", False, False),
    ],
)
def test_policy_decides_per_family_device_and_cpu(
    policy: Any, family: str, device: str, native_bf16: bool, expected: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(precision, "native_bf16", lambda device: native_bf16)
    assert precision.int8_applies(policy, family, device) is expected


def test_quantized_causal_lm_keeps_its_logits_and_frees_the_float_weights(tiny_causal_lm: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_causal_lm).eval()
    ids = torch.randint(0, model.config.vocab_size, (2, 12))
    with torch.inference_mode():
        reference = model(input_ids=ids).logits
    float_bytes = precision.held_bytes(model)
    linears = sum(type(m) is torch.nn.Linear for m in model.modules())
    assert precision.quantize_linears(model) == linears
    with torch.inference_mode():
        quantized = model(input_ids=ids).logits
    similarity = torch.nn.functional.cosine_similarity(reference.flatten(1), quantized.flatten(1))
    assert similarity.min() > 0.99
    assert not torch.equal(reference, quantized)  # the int8 kernel really ran
    # Each converted layer's float weights go (4 bytes a weight -> 1), except a head tied to the embedding's.
    converted = [m for m in model.modules() if hasattr(m, "int8_bytes")]
    own = [m for m in converted if not (m is model.lm_head and model.config.tie_word_embeddings)]
    expected = float_bytes - sum(4 * m.in_features * m.out_features for m in own) + sum(m.int8_bytes for m in converted)
    assert precision.held_bytes(model) == pytest.approx(expected, abs=64)


def test_classification_head_stays_float(tiny_encoder: Path) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(tiny_encoder, num_labels=3)
    head = model.classifier.weight.detach().clone()
    assert precision.quantize_linears(model) > 0
    assert torch.equal(model.classifier.weight, head)
    assert not hasattr(model.classifier, "int8_bytes")


@pytest.fixture
def engines(tmp_path: Path) -> dict[str, InferenceEngine]:
    import torch

    torch.set_num_threads(1)
    return {policy: InferenceEngine(tmp_path / "cache", device="cpu", int8=policy) for policy in ("off", "on")}


def test_int8_adapters_answer_like_float_and_share_one_base(
    engines: dict[str, InferenceEngine], tiny_causal_lm: Path, lora_checkpoint: Path, tmp_path: Path, make_lora: Any
) -> None:
    other = make_lora(tiny_causal_lm, tmp_path / "other", seed=9)
    answers: dict[str, list[dict[str, float]]] = {}
    for policy, engine in engines.items():
        answers[policy] = []
        for checkpoint in (lora_checkpoint, other):
            artifact = ModelArtifact("ft:tiny:localft::abc12345", str(tiny_causal_lm), checkpoint)
            for text in TEXTS:
                probs = engine.chat(artifact, ask(text)).choices[0].label_probs
                assert probs is not None and set(probs) == set(SENTIMENTS)
                assert math.isclose(sum(probs.values()), 1.0, abs_tol=1e-6)
                answers[policy].append(probs)
    for exact, quantized in zip(answers["off"], answers["on"], strict=True):
        assert quantized == pytest.approx(exact, abs=0.05)
    on = engines["on"]
    assert on.loaded.count(str(tiny_causal_lm.resolve())) == 1
    assert answers["on"][0] != answers["on"][len(TEXTS)]  # the two adapters still answer differently


def test_int8_encoder_answers_with_close_probabilities(
    tmp_path: Path, tiny_encoder: Path, encoder_checkpoint: Path
) -> None:
    artifact = ModelArtifact("ft:enc:localft::abc12345", str(tiny_encoder), encoder_checkpoint)
    results = {}
    for policy in ("off", "on"):
        engine = InferenceEngine(tmp_path / "cache", device="cpu", int8=policy)  # type: ignore[arg-type]
        results[policy] = [engine.chat(artifact, ask(text)).choices[0].label_probs for text in TEXTS]
        model = engine._weights.encoder(engine.describe(artifact))
        assert any(hasattr(m, "int8_bytes") for m in model.modules()) is (policy == "on")
    for exact, quantized in zip(results["off"], results["on"], strict=True):
        assert quantized == pytest.approx(exact, abs=0.05)
