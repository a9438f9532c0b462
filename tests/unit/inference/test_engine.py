"""The engine end to end on tiny models: labels always valid, probabilities summing to 1, shared base weights."""

import json
import math
import threading
from pathlib import Path
from typing import Any

import pytest

from localft.errors import InvalidRequestError
from localft.inference.engine import InferenceEngine
from localft.inference.types import ChatRequest, ModelArtifact

SENTIMENTS = ["positive", "negative", "neutral"]
TEXTS = ["the flight was great thanks", "my bag was lost again", "a neutral question about the gate", "hm", "x" * 80]


def ask(text: str, **kwargs: object) -> ChatRequest:
    return ChatRequest([{"role": "user", "content": text}], **kwargs)  # type: ignore[arg-type]


def ft(base: Path, checkpoint: Path) -> ModelArtifact:
    return ModelArtifact("ft:tiny:localft::abc12345", str(base), checkpoint)


def test_classifier_answers_inside_label_set_with_probabilities_summing_to_one(
    engine: InferenceEngine, tiny_causal_lm: Path, lora_checkpoint: Path
) -> None:
    for text in TEXTS:
        result = engine.chat(ft(tiny_causal_lm, lora_checkpoint), ask(text, temperature=1.5, n=4, seed=3))
        for choice in result.choices:
            assert choice.content in SENTIMENTS
            assert choice.label_probs is not None and set(choice.label_probs) == set(SENTIMENTS)
            assert math.isclose(sum(choice.label_probs.values()), 1.0, abs_tol=1e-6)
        assert result.prompt_tokens > 0 and result.completion_tokens >= 4


def test_temperature_zero_is_deterministic_and_logprobs_are_label_probabilities(
    engine: InferenceEngine, tiny_causal_lm: Path, lora_checkpoint: Path
) -> None:
    request = ask(TEXTS[0], temperature=0, logprobs=True, top_logprobs=5)
    first = engine.chat(ft(tiny_causal_lm, lora_checkpoint), request)
    again = engine.chat(ft(tiny_causal_lm, lora_checkpoint), request)
    assert first.choices[0].content == again.choices[0].content
    (choice,) = first.choices
    assert choice.label_probs is not None
    assert choice.content == max(choice.label_probs, key=lambda k: choice.label_probs[k])  # type: ignore[index]
    assert choice.logprobs is not None
    alternatives = choice.logprobs[0].top_logprobs
    assert sorted(t.token for t in alternatives) == sorted(SENTIMENTS)
    assert math.isclose(sum(math.exp(t.logprob) for t in alternatives), 1.0, abs_tol=1e-6)


def test_seeded_sampling_repeats(engine: InferenceEngine, tiny_causal_lm: Path, lora_checkpoint: Path) -> None:
    request = ask(TEXTS[1], temperature=2.0, n=20, seed=11)
    a = [c.content for c in engine.chat(ft(tiny_causal_lm, lora_checkpoint), request).choices]
    b = [c.content for c in engine.chat(ft(tiny_causal_lm, lora_checkpoint), request).choices]
    assert a == b and len(a) == 20


def test_assistant_prefix_is_respected(
    tiny_causal_lm: Path, tmp_path: Path, engine: InferenceEngine, make_lora: Any
) -> None:
    checkpoint = make_lora(
        tiny_causal_lm, tmp_path / "legal", labels=["cited", "applied"], assistant_prefix="Case Outcome: "
    )
    artifact = ft(tiny_causal_lm, checkpoint)
    partial = ChatRequest(
        [{"role": "user", "content": "a case"}, {"role": "assistant", "content": "Case Outcome:"}], temperature=0
    )
    assert engine.chat(artifact, partial).choices[0].content in (" cited", " applied")
    fresh = engine.chat(artifact, ask("a case", temperature=0)).choices[0]
    assert fresh.content in ("Case Outcome: cited", "Case Outcome: applied")
    assert fresh.label_probs is not None and set(fresh.label_probs) == {"cited", "applied"}


def test_response_format_enum_constrains_a_base_model(engine: InferenceEngine, tiny_causal_lm: Path) -> None:
    schema = {"type": "object", "properties": {"label": {"type": "string", "enum": ["yes", "no", "maybe"]}}}
    fmt = {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": True}}
    base = ModelArtifact("tiny", str(tiny_causal_lm))
    for text in TEXTS[:3]:
        (choice,) = engine.chat(base, ask(text, temperature=0, response_format=fmt)).choices
        assert json.loads(choice.content)["label"] in ("yes", "no", "maybe")
        assert choice.label_probs is not None
        assert math.isclose(sum(choice.label_probs.values()), 1.0, abs_tol=1e-6)


def test_response_format_enum_on_a_classifier_uses_its_labels(
    engine: InferenceEngine, tiny_causal_lm: Path, lora_checkpoint: Path
) -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "s", "schema": {"properties": {"s": {"enum": SENTIMENTS}}}}}
    plain = engine.chat(ft(tiny_causal_lm, lora_checkpoint), ask(TEXTS[0], temperature=0)).choices[0]
    as_json = engine.chat(ft(tiny_causal_lm, lora_checkpoint), ask(TEXTS[0], temperature=0, response_format=fmt))
    assert json.loads(as_json.choices[0].content) == {"s": plain.content}


def test_base_model_generates_freely_within_limits(engine: InferenceEngine, tiny_causal_lm: Path) -> None:
    base = ModelArtifact("tiny", str(tiny_causal_lm))
    greedy = ask(TEXTS[0], temperature=0, max_tokens=6, logprobs=True, top_logprobs=2)
    first, second = engine.chat(base, greedy), engine.chat(base, greedy)
    assert first.choices[0].content == second.choices[0].content
    assert first.completion_tokens <= 6
    assert first.choices[0].finish_reason in ("length", "stop")
    assert first.choices[0].logprobs is not None and len(first.choices[0].logprobs[0].top_logprobs) == 2
    sampled = ask(TEXTS[1], temperature=1.0, max_tokens=8, n=3, seed=5)
    a, b = engine.chat(base, sampled), engine.chat(base, sampled)
    assert [c.content for c in a.choices] == [c.content for c in b.choices] and len(a.choices) == 3


def test_stop_sequence_ends_generation(engine: InferenceEngine, tiny_causal_lm: Path) -> None:
    base = ModelArtifact("tiny", str(tiny_causal_lm))
    free = engine.chat(base, ask(TEXTS[0], temperature=0, max_tokens=12)).choices[0].content
    if len(free) < 3:
        pytest.skip("the tiny model produced too little text to cut")
    stop = free[1:3]
    cut = engine.chat(base, ask(TEXTS[0], temperature=0, max_tokens=12, stop=[stop])).choices[0]
    assert stop not in cut.content and free.startswith(cut.content) and cut.finish_reason == "stop"


def test_json_object_is_valid_json(engine: InferenceEngine, tiny_causal_lm: Path) -> None:
    base = ModelArtifact("tiny", str(tiny_causal_lm))
    out = engine.chat(base, ask(TEXTS[0], temperature=0, max_tokens=5, response_format={"type": "json_object"}))
    json.loads(out.choices[0].content)


def test_multi_label_causal_answers_a_valid_label_set(
    engine: InferenceEngine, tiny_causal_lm: Path, tmp_path: Path, make_lora: Any
) -> None:
    labels = ["toxic", "insult", "threat"]
    checkpoint = make_lora(
        tiny_causal_lm, tmp_path / "multi", labels=labels, multi_label=True, none_label="none", seed=2
    )
    for text in TEXTS:
        for request in (ask(text, temperature=0), ask(text, temperature=1.0, seed=1, n=3)):
            for choice in engine.chat(ft(tiny_causal_lm, checkpoint), request).choices:
                parts = choice.content.split(",")
                assert choice.content == "none" or (set(parts) <= set(labels) and len(set(parts)) == len(parts))
                assert parts == sorted(parts, key=lambda p: [*labels, "none"].index(p))


def test_encoder_classifier(engine: InferenceEngine, tiny_encoder: Path, encoder_checkpoint: Path) -> None:
    artifact = ModelArtifact("ft:enc", str(tiny_encoder), encoder_checkpoint)
    result = engine.chat(artifact, ask(TEXTS[0], temperature=0, logprobs=True, top_logprobs=3, n=2))
    for choice in result.choices:
        assert choice.content in SENTIMENTS
        assert choice.label_probs is not None
        assert math.isclose(sum(choice.label_probs.values()), 1.0, abs_tol=1e-6)
    assert result.choices[0].content == result.choices[1].content


def test_encoder_multi_label_uses_thresholds(
    engine: InferenceEngine, tiny_encoder: Path, tmp_path: Path, make_encoder: Any
) -> None:
    labels = ["toxic", "insult", "threat"]
    never = make_encoder(
        tiny_encoder, tmp_path / "never", labels=labels, multi_label=True, none_label="none", thresholds=[1.1] * 3
    )
    always = make_encoder(
        tiny_encoder, tmp_path / "always", labels=labels, multi_label=True, none_label="none", thresholds=[0.0] * 3
    )
    assert engine.chat(ModelArtifact("n", str(tiny_encoder), never), ask("hi")).choices[0].content == "none"
    assert engine.chat(ModelArtifact("a", str(tiny_encoder), always), ask("hi")).choices[0].content == (
        "toxic,insult,threat"
    )


def test_base_encoder_zero_shot_needs_an_enum(engine: InferenceEngine, tiny_encoder: Path) -> None:
    base = ModelArtifact("enc", str(tiny_encoder))
    with pytest.raises(InvalidRequestError) as err:
        engine.chat(base, ask("hello"))
    assert err.value.param == "model"
    fmt = {"type": "json_schema", "json_schema": {"name": "c", "schema": {"enum": ["flight", "bag"]}}}
    (choice,) = engine.chat(base, ask("my bag was lost", response_format=fmt, temperature=0)).choices
    assert json.loads(choice.content) in ("flight", "bag")


def test_bad_request_names_the_field(engine: InferenceEngine, tiny_causal_lm: Path) -> None:
    with pytest.raises(InvalidRequestError) as err:
        engine.chat(ModelArtifact("tiny", str(tiny_causal_lm)), ask("x", top_logprobs=30))
    assert err.value.param == "top_logprobs"


def test_adapters_share_one_base_and_base_requests_ignore_them(
    engine: InferenceEngine, tiny_causal_lm: Path, lora_checkpoint: Path, tmp_path: Path, make_lora: Any
) -> None:
    base = ModelArtifact("tiny", str(tiny_causal_lm))
    fmt = {"type": "json_schema", "json_schema": {"name": "c", "schema": {"enum": SENTIMENTS}}}
    before = engine.chat(base, ask(TEXTS[0], temperature=0, response_format=fmt)).choices[0].label_probs
    other = make_lora(tiny_causal_lm, tmp_path / "other", seed=9)
    one = engine.chat(ft(tiny_causal_lm, lora_checkpoint), ask(TEXTS[0], temperature=0)).choices[0].label_probs
    two = engine.chat(ft(tiny_causal_lm, other), ask(TEXTS[0], temperature=0)).choices[0].label_probs
    after = engine.chat(base, ask(TEXTS[0], temperature=0, response_format=fmt)).choices[0].label_probs
    assert one != two  # different adapters really answer differently
    assert before == pytest.approx(after, abs=1e-6)  # and the base answers as it did before they were loaded
    loaded = engine.loaded
    assert loaded.count(str(tiny_causal_lm.resolve())) == 1
    assert str(lora_checkpoint.resolve()) in loaded and str(other.resolve()) in loaded
    assert engine.evict(other) and str(other.resolve()) not in engine.loaded
    again = engine.chat(ft(tiny_causal_lm, lora_checkpoint), ask(TEXTS[0], temperature=0)).choices[0].label_probs
    assert again == pytest.approx(one, abs=1e-6)


def test_merged_adapter_weights_answer_like_the_adapter_layers(
    tmp_path: Path, tiny_causal_lm: Path, lora_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from localft.inference import models

    def answers(engine: InferenceEngine) -> list[dict[str, float] | None]:
        artifact = ft(tiny_causal_lm, lora_checkpoint)
        return [engine.chat(artifact, ask(text, temperature=0)).choices[0].label_probs for text in TEXTS]

    merged_engine = InferenceEngine(tmp_path / "merged", device="cpu")
    merged = answers(merged_engine)
    monkeypatch.setattr(models, "_merged_weights", lambda model, adapter: [])  # the adapter's own layers instead
    layers_engine = InferenceEngine(tmp_path / "layers", device="cpu")
    layers = answers(layers_engine)
    for a, b in zip(merged, layers, strict=True):
        assert a == pytest.approx(b, abs=1e-3)  # the same model, rounded to the held dtype in another order
    # The merged copies (q and v of both layers) are held, and counted against the memory bound.
    assert merged_engine.memory_bytes > layers_engine.memory_bytes


def test_memory_bound_evicts_least_recently_used(
    tmp_path: Path, tiny_causal_lm: Path, tiny_encoder: Path, encoder_checkpoint: Path
) -> None:
    engine = InferenceEngine(tmp_path / "cache", device="cpu", max_memory_bytes=1)
    fmt = {"type": "json_schema", "json_schema": {"name": "c", "schema": {"enum": ["a", "b"]}}}
    engine.chat(ModelArtifact("tiny", str(tiny_causal_lm)), ask("x", response_format=fmt))
    assert engine.loaded == [str(tiny_causal_lm.resolve())]
    engine.chat(ModelArtifact("e", str(tiny_encoder), encoder_checkpoint), ask("x"))
    assert engine.loaded == [str(encoder_checkpoint.resolve())]


def test_concurrent_requests_are_batched_and_match_single_answers(
    engine: InferenceEngine, tiny_causal_lm: Path, lora_checkpoint: Path
) -> None:
    artifact = ft(tiny_causal_lm, lora_checkpoint)
    expected = {t: engine.chat(artifact, ask(t, temperature=0)).choices[0].label_probs for t in TEXTS}
    batches_before = engine.scorer.batches_run
    results: dict[str, object] = {}
    start = threading.Barrier(16)

    def worker(i: int) -> None:
        text = TEXTS[i % len(TEXTS)]
        start.wait()
        results[f"{i}"] = (text, engine.chat(artifact, ask(text, temperature=0)).choices[0].label_probs)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 16
    for text, probs in results.values():  # type: ignore[misc]
        assert probs == pytest.approx(expected[text], abs=2e-2)  # bf16 batches pad differently; same answers
    assert engine.scorer.batches_run - batches_before < 16


def test_forward_passes_run_on_the_compute_thread(
    engine: InferenceEngine, tiny_causal_lm: Path, lora_checkpoint: Path, tiny_encoder: Path, encoder_checkpoint: Path
) -> None:
    seen: list[str] = []
    run_batch = engine._run_batch

    def recording(jobs: Any) -> Any:
        seen.append(threading.current_thread().name)
        return run_batch(jobs)

    engine._run_batch = recording  # type: ignore[method-assign]
    engine.chat(ft(tiny_causal_lm, lora_checkpoint), ask(TEXTS[0]))
    engine.chat(ModelArtifact("ft:enc", str(tiny_encoder), encoder_checkpoint), ask(TEXTS[1]))
    assert seen == ["localft-compute", "localft-compute"]


def test_concurrent_encoder_requests(engine: InferenceEngine, tiny_encoder: Path, encoder_checkpoint: Path) -> None:
    # Regression: unlocked tokenizer calls from request threads once turned a padded batch ragged mid-call.
    artifact = ModelArtifact("ft:enc", str(tiny_encoder), encoder_checkpoint)
    expected = {t: engine.chat(artifact, ask(t, temperature=0)).choices[0].label_probs for t in TEXTS}
    errors: list[BaseException] = []
    answers: list[tuple[str, object]] = []

    def worker(i: int) -> None:
        for j in range(6):
            text = TEXTS[(i + j) % len(TEXTS)]
            try:
                answers.append((text, engine.chat(artifact, ask(text, temperature=0)).choices[0].label_probs))
            except BaseException as exc:
                errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(answers) == 72
    for text, probs in answers:  # batch shapes change bf16 rounding, not the answers
        assert probs == pytest.approx(expected[text], abs=2e-2)


def test_evicting_the_last_adapter_unwraps_the_base(
    engine: InferenceEngine, tiny_causal_lm: Path, lora_checkpoint: Path
) -> None:
    base = ModelArtifact("tiny", str(tiny_causal_lm))
    fmt = {"type": "json_schema", "json_schema": {"name": "c", "schema": {"enum": SENTIMENTS}}}
    before = engine.chat(base, ask(TEXTS[2], temperature=0, response_format=fmt)).choices[0].label_probs
    engine.chat(ft(tiny_causal_lm, lora_checkpoint), ask(TEXTS[2], temperature=0))
    assert engine.evict(lora_checkpoint)
    assert engine.loaded == [str(tiny_causal_lm.resolve())]
    after = engine.chat(base, ask(TEXTS[2], temperature=0, response_format=fmt)).choices[0].label_probs
    assert after == pytest.approx(before, abs=1e-6)
    assert not engine.evict(lora_checkpoint)


def test_generative_fine_tune_generates_with_its_adapter(
    engine: InferenceEngine, tiny_causal_lm: Path, tmp_path: Path, make_lora: Any
) -> None:
    checkpoint = make_lora(tiny_causal_lm, tmp_path / "gen", task="generation", labels=[], seed=4)
    request = ask(TEXTS[0], temperature=0, max_tokens=6)
    tuned = engine.chat(ft(tiny_causal_lm, checkpoint), request)
    base = engine.chat(ModelArtifact("tiny", str(tiny_causal_lm)), request)
    assert tuned.choices[0].label_probs is None and 0 < tuned.completion_tokens <= 6
    assert tuned.choices[0].content == engine.chat(ft(tiny_causal_lm, checkpoint), request).choices[0].content
    tuned_lp = engine.chat(ft(tiny_causal_lm, checkpoint), ask(TEXTS[0], temperature=0, max_tokens=1, logprobs=True))
    base_lp = engine.chat(
        ModelArtifact("tiny", str(tiny_causal_lm)), ask(TEXTS[0], temperature=0, max_tokens=1, logprobs=True)
    )
    assert tuned_lp.choices[0].logprobs != base_lp.choices[0].logprobs  # the adapter is really applied
    assert base.choices[0].finish_reason in ("stop", "length")
