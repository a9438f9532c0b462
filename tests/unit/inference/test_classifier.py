"""Pooled classifiers (`localft.classifier`) served by the engine: an ensemble is one model, its answers are the
members' averaged probabilities, frozen encoders are shared between models, and requests are read back to the
trained prompt shape."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from localft.base_models.prompt_shape import PromptShape
from localft.classifier import Member, PooledClassifier, TfidfFeatures, fit_head
from localft.classifier.model import load_encoder_features, save_member
from localft.inference.engine import InferenceEngine
from localft.inference.types import ChatRequest, ModelArtifact
from localft.training.checkpoint import CheckpointMeta, write_meta

TEXTS = {
    "positive": ["the flight was great thanks", "great flight thanks", "thanks the flight was great"],
    "negative": ["my bag was lost again", "lost my bag again", "the bag was lost"],
    "neutral": ["a neutral question about the gate", "a question about the gate", "question about the gate"],
}
LABELS = sorted(TEXTS)
SYSTEM = "Classify the sentiment."


def build(
    folder: Path, tiny_encoder: Path, kinds: tuple[str, ...], shape: PromptShape | None = None
) -> tuple[Path, PooledClassifier]:
    """A classifier checkpoint of frozen-encoder and/or TF-IDF members fitted on the tiny corpus."""
    texts = [t for label in LABELS for t in TEXTS[label]]
    targets = np.array([LABELS.index(label) for label in LABELS for _ in TEXTS[label]])
    folder.mkdir(parents=True)
    members, loaded = [], []
    for i, kind in enumerate(kinds):
        if kind == "tfidf":
            member = Member("tfidf", f"member-{i}", weight=0.5)
            features: object = TfidfFeatures.fit(texts)
        else:
            member = Member("encoder", f"member-{i}", base_model=str(tiny_encoder), max_length=32)
            features = load_encoder_features(tiny_encoder, "cpu", 32)
        head = fit_head(features.embed(texts), targets, len(LABELS), False, 10.0)  # type: ignore[attr-defined]
        save_member(folder, member, head, features)  # type: ignore[arg-type]
        members.append(member)
        loaded.append((member, features, head))
    meta = CheckpointMeta(
        base_model="auto",
        family="classifier",
        task="classification",
        step=1,
        epoch=1,
        labels=LABELS,
        members=[m.to_dict() for m in members],
        prompt_shape=shape.to_dict() if shape else None,
    )
    write_meta(folder, meta)
    return folder, PooledClassifier(loaded, False)  # type: ignore[arg-type]


def ask(text: str, system: str | None = SYSTEM, **kwargs: object) -> ChatRequest:
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": text}]
    return ChatRequest(messages, **kwargs)  # type: ignore[arg-type]


def test_an_ensemble_answers_with_its_members_averaged_probabilities(
    tiny_encoder: Path, tmp_path: Path, engine: InferenceEngine
) -> None:
    folder, direct = build(tmp_path / "ens", tiny_encoder, ("encoder", "tfidf"))
    artifact = ModelArtifact("ft:auto:ens", "auto", folder)
    for label in LABELS:
        for text in TEXTS[label]:
            result = engine.chat(artifact, ask(text, temperature=0, logprobs=True, top_logprobs=3))
            (choice,) = result.choices
            assert choice.content in LABELS
            assert choice.label_probs is not None
            assert math.isclose(sum(choice.label_probs.values()), 1.0, abs_tol=1e-6)
            expected = direct.probabilities([text])[0]  # fp32 here; the engine's encoder may hold bf16 weights
            got = np.array([choice.label_probs[label] for label in LABELS])
            np.testing.assert_allclose(got, expected, atol=0.02)
            assert choice.content == LABELS[int(np.argmax(got))]
            assert choice.logprobs is not None and len(choice.logprobs[0].top_logprobs) == 3
    assert result.prompt_tokens > 0


def test_tfidf_alone_counts_words_for_usage(tiny_encoder: Path, tmp_path: Path, engine: InferenceEngine) -> None:
    folder, _ = build(tmp_path / "tfidf", tiny_encoder, ("tfidf",))
    result = engine.chat(ModelArtifact("ft:auto:t", "auto", folder), ask("my bag was lost again", temperature=0))
    assert result.choices[0].content == "negative"
    assert result.prompt_tokens == 5


def test_a_response_format_enum_restricts_the_answer(
    tiny_encoder: Path, tmp_path: Path, engine: InferenceEngine
) -> None:
    folder, _ = build(tmp_path / "enum", tiny_encoder, ("tfidf",))
    schema = {"type": "object", "properties": {"label": {"enum": ["positive", "neutral"]}}, "required": ["label"]}
    request = ask(
        "my bag was lost again",
        temperature=0,
        response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}},
    )
    (choice,) = engine.chat(ModelArtifact("ft:auto:e", "auto", folder), request).choices
    assert choice.content in ('{"label": "positive"}', '{"label": "neutral"}')


def test_frozen_encoders_are_held_once_for_every_classifier_on_them(
    tiny_encoder: Path, tmp_path: Path, engine: InferenceEngine
) -> None:
    first, _ = build(tmp_path / "a", tiny_encoder, ("encoder",))
    second, _ = build(tmp_path / "b", tiny_encoder, ("encoder", "tfidf"))
    for folder in (first, second):
        engine.chat(ModelArtifact(f"ft:auto:{folder.name}", "auto", folder), ask("great flight", temperature=0))
    frozen = [key for key in engine.loaded if key.startswith("frozen:")]
    assert len(frozen) == 1
    assert {str(first.resolve()), str(second.resolve())} <= set(engine.loaded)
    engine._weights.evict(frozen[0])  # the shared encoder goes: so do the classifiers that ran on it
    assert not {str(first.resolve()), str(second.resolve())} & set(engine.loaded)
    (choice,) = engine.chat(ModelArtifact("ft:auto:a", "auto", first), ask("great flight", temperature=0)).choices
    assert choice.content in LABELS


@pytest.mark.parametrize(
    "request_text",
    [
        "What is the sentiment of this tweet? Answer positive, negative or neutral. tweet: my bag was lost again",
        'Tell me the sentiment.\nText: "my bag was lost again"',
        "Classify:\n```\nmy bag was lost again\n```",
    ],
)
def test_a_request_in_another_wrapper_is_read_back_to_its_text(
    request_text: str, tiny_encoder: Path, tmp_path: Path, engine: InferenceEngine
) -> None:
    shape = PromptShape.learn(
        [[{"role": "system", "content": SYSTEM}, {"role": "user", "content": t}] for t in ["a", "b c"]]
    )
    folder, _ = build(tmp_path / "shape", tiny_encoder, ("encoder", "tfidf"), shape)
    artifact = ModelArtifact("ft:auto:s", "auto", folder)
    trained = engine.chat(artifact, ask("my bag was lost again", temperature=0)).choices[0]
    shifted = engine.chat(artifact, ask(request_text, system=None, temperature=0)).choices[0]
    assert shifted.content == trained.content
    assert shifted.label_probs == pytest.approx(trained.label_probs)
