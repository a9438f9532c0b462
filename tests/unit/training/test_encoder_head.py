"""Encoder + classification head on the tiny BERT: single-label, multi-label with thresholds, class weights."""

from __future__ import annotations

import contextlib
import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

import localft.training.encoder_head as encoder_head
from localft.training import Hyperparameters, TrainSpec, run_training
from localft.training.checkpoint import read_checkpoint
from localft.training.encoder_head import EncoderLearner, first_token_only, tune_thresholds
from localft.training.run import _load_tokenizer
from localft.training.task import detect_task

from .conftest import ListSink, chat, sentiment_records, write_jsonl

torch.set_num_threads(1)  # tiny models: a second thread only adds sync overhead on a busy machine


def encoder_spec(model: Path, train: Path, valid: Path | None, out: Path, **kw: object) -> TrainSpec:
    hp = Hyperparameters(n_epochs=6, batch_size=2, learning_rate_multiplier=30.0)
    return TrainSpec(
        base_model=str(model), training_file=train, validation_file=valid, output_dir=out, hyperparameters=hp, **kw
    )  # type: ignore[arg-type]


def test_single_label_encoder_learns_and_saves_a_classifier(tiny_encoder: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForSequenceClassification

    train = write_jsonl(tmp_path / "t.jsonl", sentiment_records(4, prefix="Sentiment: "))
    valid = write_jsonl(tmp_path / "v.jsonl", sentiment_records(1, prefix="Sentiment: "))
    sink = ListSink()
    result = run_training(encoder_spec(tiny_encoder, train, valid, tmp_path / "out", class_weights=True), sink)

    meta = read_checkpoint(result.final_checkpoint)
    assert (meta.family, meta.task, meta.multi_label) == ("encoder", "classification", False)
    assert meta.labels == ["negative", "neutral", "positive"] and meta.assistant_prefix == "Sentiment: "
    assert sink.metrics[-1].train_loss < sink.metrics[0].train_loss
    assert sink.metrics[-1].classification["accuracy"] > 0.5
    assert any("learning rate 0.003 (multiplier 30), max length" in line for line in sink.messages)  # 3 labels
    model = AutoModelForSequenceClassification.from_pretrained(result.final_checkpoint / "model")
    assert model.config.id2label == {0: "negative", 1: "neutral", 2: "positive"}


def test_multi_label_encoder_records_thresholds(tiny_encoder: Path, tmp_path: Path) -> None:
    rows = [
        ("my bag was lost again", "lost,bag"),
        ("the flight was great thanks", "none"),
        ("lost my bag", "lost,bag"),
        ("a question about the gate", "gate"),
        ("the bag at the gate", "bag,gate"),
        ("great flight", "none"),
    ] * 4
    train = write_jsonl(tmp_path / "t.jsonl", [chat(t, a) for t, a in rows])
    valid = write_jsonl(tmp_path / "v.jsonl", [chat(t, a) for t, a in rows[:6]])
    result = run_training(encoder_spec(tiny_encoder, train, valid, tmp_path / "out"), ListSink())

    meta = read_checkpoint(result.final_checkpoint)
    assert meta.multi_label and meta.none_label == "none" and meta.label_separator == ","
    assert meta.labels == ["bag", "gate", "lost"]
    assert len(meta.thresholds) == 3 and all(0 < t < 1 for t in meta.thresholds)
    saved = json.loads((result.final_checkpoint / "localft_checkpoint.json").read_text())
    assert "full_valid_exact_match" in saved["metrics"]


def test_thresholds_maximise_f1_per_label() -> None:
    probs = torch.tensor([[0.9, 0.2], [0.3, 0.25], [0.2, 0.1], [0.8, 0.3]])
    gold = [(1, 0), (1, 1), (0, 0), (1, 1)]
    low, high = tune_thresholds(probs, gold)
    assert 0.2 <= low < 0.3  # catches the 0.3 positive, not the 0.2 negative
    assert 0.1 <= high < 0.25


def test_a_label_the_model_cannot_rank_keeps_the_default_threshold() -> None:
    # One `threat` among 100 validation examples, scored no higher than the rest: the best-F1 threshold would
    # switch the label on for every example; it must stay at 0.5 (off) instead.
    generator = torch.Generator().manual_seed(0)
    noise = 0.1 + 0.05 * torch.rand(100, generator=generator)
    learned = torch.linspace(0.0, 1.0, 100)
    probs = torch.stack([noise, learned], dim=1)
    gold = [(int(i == 3), int(i >= 90)) for i in range(100)]
    threat, toxic = tune_thresholds(probs, gold)
    assert threat == 0.5
    assert 0.85 <= toxic < 0.91  # a label the model does rank is still tuned


def test_encoder_trains_without_a_validation_file(tiny_encoder: Path, tmp_path: Path) -> None:
    train = write_jsonl(tmp_path / "t.jsonl", sentiment_records(2))
    sink = ListSink()
    result = run_training(encoder_spec(tiny_encoder, train, None, tmp_path / "out"), sink)
    assert read_checkpoint(result.final_checkpoint).labels == ["negative", "neutral", "positive"]
    assert all(m.full_valid_loss is None and m.valid_loss is None for m in sink.metrics)


def test_the_last_layer_at_the_first_token_only_gives_the_same_logits_and_gradients(tiny_encoder: Path) -> None:
    """The classifier reads position 0 of the last layer: computing that layer there alone changes nothing it sees,
    with padding or without, in either attention, and the head's gradients match the full model's."""
    from transformers import AutoModelForSequenceClassification

    from localft.training.kernels import attention_for_width

    torch.manual_seed(0)
    full = AutoModelForSequenceClassification.from_pretrained(tiny_encoder, num_labels=3).eval()
    short = AutoModelForSequenceClassification.from_pretrained(tiny_encoder, num_labels=3).eval()
    short.load_state_dict(full.state_dict())
    assert first_token_only(short)
    ids = torch.randint(5, full.config.vocab_size, (3, 12))
    padded = torch.ones_like(ids)
    padded[0, 7:] = 0
    padded[2, 3:] = 0
    for mask in (padded, torch.ones_like(ids)):
        for ours in (False, True):  # the model's own attention (SDPA), then ours
            expected = full(input_ids=ids, attention_mask=mask).logits
            with attention_for_width(short, ids.shape[1]) if ours else contextlib.nullcontext():
                got = short(input_ids=ids, attention_mask=mask).logits
            torch.testing.assert_close(got, expected)
    expected.sum().backward()
    got.sum().backward()
    for (name, a), b in zip(full.named_parameters(), short.parameters(), strict=True):
        if a.grad is not None and b.grad is not None:
            torch.testing.assert_close(b.grad, a.grad, msg=name)
    # The last layer's query, attention output and feed-forward block still train (at position 0).
    assert short.bert.encoder.layer[-1].output.dense.weight.grad is not None


def test_fine_tuning_drops_nothing_unless_told_to_keep_the_models_dropout(
    tiny_encoder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fine-tuning drops no attention weights (`ATTENTION_DROPOUT`) and no hidden states (`HIDDEN_DROPOUT`), both
    measured in BENCHMARKS.md, and records the choice in the config it saves; None keeps the model's own."""
    from torch import nn
    from transformers import AutoConfig

    def learner() -> EncoderLearner:
        task = detect_task(["positive", "negative"] * 5)
        return EncoderLearner(tiny_encoder, _load_tokenizer(tiny_encoder), task, "cpu", max_length=32)

    def dropouts(model: nn.Module) -> dict[str, float]:
        return {name: m.p for name, m in model.named_modules() if isinstance(m, nn.Dropout)}

    pretrained = AutoConfig.from_pretrained(tiny_encoder)
    assert pretrained.attention_probs_dropout_prob > 0 and pretrained.hidden_dropout_prob > 0  # else nothing shows
    assert encoder_head.ATTENTION_DROPOUT == 0.0 and encoder_head.HIDDEN_DROPOUT == 0.0
    model = learner().model
    assert model.config.attention_probs_dropout_prob == 0.0 == model.config.hidden_dropout_prob
    ours = dropouts(model)
    # Every dropout of the model: the embeddings', each layer's three, the classifier's.
    assert len(ours) == 1 + 3 * len(model.bert.encoder.layer) + 1
    assert set(ours.values()) == {0.0}

    monkeypatch.setattr(encoder_head, "HIDDEN_DROPOUT", None)
    layer = learner().model.bert.encoder.layer[0]
    assert layer.attention.self.dropout.p == 0.0
    assert layer.attention.output.dropout.p == pretrained.hidden_dropout_prob == layer.output.dropout.p
    monkeypatch.setattr(encoder_head, "ATTENTION_DROPOUT", None)
    model = learner().model
    assert model.bert.encoder.layer[0].attention.self.dropout.p == pretrained.attention_probs_dropout_prob
    assert model.dropout.p == pretrained.hidden_dropout_prob  # the classifier's follows the hidden states'


def test_frozen_word_embeddings_stay_as_they_were(
    tiny_encoder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`TRAIN_WORD_EMBEDDINGS = False` (not the default: `bench_encoder_choices` measured it) leaves the word
    embedding matrix out of the trained weights; the rest of the model still trains."""
    from localft.training.dataset import read_examples
    from localft.training.loop import Plan, TrainLoop

    monkeypatch.setattr(encoder_head, "TRAIN_WORD_EMBEDDINGS", False)
    task = detect_task(["positive", "negative"] * 5)
    learner = EncoderLearner(tiny_encoder, _load_tokenizer(tiny_encoder), task, "cpu", max_length=32)
    words = learner.model.get_input_embeddings().weight
    assert all(p is not words for group in learner.parameter_groups() for p in group.params)
    before = words.detach().clone()
    classifier = learner.model.classifier.weight.detach().clone()
    items = learner.make_items(read_examples(write_jsonl(tmp_path / "t.jsonl", sentiment_records(1))))
    plan = Plan(n_epochs=1, batch_size=len(items), learning_rate=1e-3, seed=0, tokens_per_forward=1 << 20)
    loop = TrainLoop(learner, items, [], plan, ListSink(), tmp_path, lambda *a: None)  # type: ignore[arg-type,return-value]
    loop._step(items, 0)
    assert torch.equal(words, before)
    assert not torch.equal(learner.model.classifier.weight, classifier)


def test_a_new_head_with_many_labels_learns_at_its_own_rate(tiny_encoder: Path, tmp_path: Path) -> None:
    """With `MANY_LABELS` labels or more, the weights the base model lacks (the classification head) learn at least
    at `NEW_HEAD_LR_SCALE` times the encoders' base rate, whatever the job's multiplier does to the other weights; with
    fewer labels, or a base model that already is a
    classifier with these labels, every weight trains at the one rate."""
    from localft.training.dataset import read_examples
    from localft.training.loop import Plan, TrainLoop

    tokenizer = _load_tokenizer(tiny_encoder)
    few = EncoderLearner(tiny_encoder, tokenizer, detect_task(["positive", "negative"] * 5), "cpu", max_length=32)
    assert [(len(g.params), g.min_lr) for g in few.parameter_groups()] == [(len(list(few.model.parameters())), 0.0)]

    many = detect_task([f"intent {i}" for i in range(encoder_head.MANY_LABELS)] * 3)
    learner = EncoderLearner(tiny_encoder, tokenizer, many, "cpu", max_length=32)
    pretrained, new = learner.parameter_groups()
    head = learner.model.classifier
    assert [id(p) for p in new.params] == [id(head.weight), id(head.bias)]
    assert new.min_lr == pytest.approx(1e-4 * encoder_head.NEW_HEAD_LR_SCALE) and encoder_head.NEW_HEAD_LR_SCALE > 1
    assert pretrained.min_lr == 0.0 and len(pretrained.params) == len(list(learner.model.parameters())) - 2
    records = [chat(f"request {i}", f"intent {i}") for i in range(encoder_head.MANY_LABELS)] * 3
    items = learner.make_items(read_examples(write_jsonl(tmp_path / "t.jsonl", records)))
    head_rate = 1e-4 * encoder_head.NEW_HEAD_LR_SCALE
    for multiplier, expected in [(1.0, [1e-4, head_rate]), (0.1, [1e-5, head_rate]), (100.0, [1e-2, 1e-2])]:
        rate = 1e-4 * multiplier
        plan = Plan(n_epochs=1, batch_size=len(items), learning_rate=rate, seed=0, tokens_per_forward=1 << 20)
        loop = TrainLoop(learner, items, [], plan, ListSink(), tmp_path, lambda *a: None)  # type: ignore[arg-type,return-value]
        assert [group["initial_lr"] for group in loop.optimizer.param_groups] == pytest.approx(expected)
    sink = ListSink()  # the job says what ran: multiplier 0.3 puts the rest at 3e-5, the head keeps its own rate
    spec = encoder_spec(tiny_encoder, tmp_path / "t.jsonl", None, tmp_path / "out")
    run_training(replace(spec, hyperparameters=Hyperparameters(n_epochs=1, learning_rate_multiplier=0.3)), sink)
    assert any(f"(multiplier 0.3, the new classification head at {head_rate:g})" in line for line in sink.messages)
    sink = ListSink()  # multiplier 30 (3e-3) is no slower than the head's own rate: one rate, nothing to name
    run_training(spec, sink)
    assert any("learning rate 0.003 (multiplier 30), max length" in line for line in sink.messages)

    classifier = tmp_path / "classifier"
    learner.model.save_pretrained(classifier)
    tokenizer.save_pretrained(classifier)
    again = EncoderLearner(classifier, _load_tokenizer(classifier), many, "cpu", max_length=32)
    assert [group.min_lr for group in again.parameter_groups()] == [0.0]


def test_a_checkpoint_from_before_the_heads_own_rate_resumes(
    tiny_encoder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job with many labels that was mid-run across the upgrade giving a new head its own rate: its checkpoint
    holds one optimizer group, the learner now makes two. The saved moments carry over by position: with both rates
    equal, the resumed run trains exactly the weights an uninterrupted one-group run does."""
    from safetensors.torch import load_file

    from localft.errors import TrainingCancelled

    records = [chat(f"request {i}", f"intent {i % encoder_head.MANY_LABELS}") for i in range(60)]
    train = write_jsonl(tmp_path / "t.jsonl", records)

    def spec(out: str, **kw: object) -> TrainSpec:
        hp = Hyperparameters(n_epochs=2, batch_size=8, learning_rate_multiplier=10.0)
        return TrainSpec(
            base_model=str(tiny_encoder), training_file=train, output_dir=tmp_path / out, hyperparameters=hp, **kw
        )  # type: ignore[arg-type]

    def weights(result: object) -> dict[str, torch.Tensor]:
        return load_file(result.final_checkpoint / "model" / "model.safetensors")  # type: ignore[attr-defined]

    monkeypatch.setattr(encoder_head, "NEW_HEAD_LR_SCALE", 0.0)
    with monkeypatch.context() as before_the_upgrade:
        before_the_upgrade.setattr(encoder_head, "MANY_LABELS", 10_000)  # one group for every weight
        full = run_training(spec("full"), ListSink())
        stopping = ListSink(stop_after_checkpoints=1)
        with pytest.raises(TrainingCancelled):
            run_training(spec("part"), stopping)
    first = stopping.checkpoints[0].path
    resumed = run_training(spec("part", resume_from=first), ListSink())
    assert resumed.steps == full.steps
    wf, wr = weights(full), weights(resumed)
    for key in wf:
        torch.testing.assert_close(wr[key], wf[key], rtol=1e-5, atol=1e-6)

    # At the head's own rate its group resumes at its own point of the schedule.
    from localft.training.dataset import read_examples
    from localft.training.loop import Plan, TrainLoop

    monkeypatch.setattr(encoder_head, "NEW_HEAD_LR_SCALE", 30.0)
    task = detect_task([r["messages"][-1]["content"] for r in records])
    learner = EncoderLearner(tiny_encoder, _load_tokenizer(tiny_encoder), task, "cpu", max_length=32)
    items = learner.make_items(read_examples(train))
    plan = Plan(n_epochs=2, batch_size=8, learning_rate=1e-4, seed=0, tokens_per_forward=1 << 20)
    loop = TrainLoop(learner, items, [], plan, ListSink(), tmp_path / "again", lambda *a: None)  # type: ignore[arg-type,return-value]
    loop.resume(first)
    body, head = loop.optimizer.param_groups
    assert head["lr"] == pytest.approx(30 * body["lr"]) and 0 < body["lr"] < 1e-4
    assert loop.scheduler.get_last_lr() == [body["lr"], head["lr"]]
    assert all(len(loop.optimizer.state[p]) == 3 for p in head["params"])  # step and both moments carried over


def test_other_architectures_keep_their_forward(tiny_causal_lm: Path) -> None:
    from transformers import AutoModelForCausalLM

    assert not first_token_only(AutoModelForCausalLM.from_pretrained(tiny_causal_lm))
