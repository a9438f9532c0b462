"""The encoder recipe on the tiny BERT: a pooled classifier whose head starts from a linear probe (LP-FT);
single-label, multi-label with thresholds, class weights, companions, resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import localft.training.encoder_head as encoder_head
from localft.classifier import LinearHead, Member, PooledClassifier, TfidfFeatures, fit_head
from localft.classifier.model import load_encoder_features
from localft.training import Hyperparameters, TrainSpec, run_training
from localft.training.checkpoint import CheckpointMeta, read_checkpoint, write_meta
from localft.training.dataset import read_examples
from localft.training.encoder_head import Companion, EncoderLearner, tune_thresholds
from localft.training.loop import Plan, TrainLoop
from localft.training.run import _load_tokenizer
from localft.training.task import detect_task

from .conftest import MULTI_LABEL_ROWS, ListSink, chat, sentiment_records, write_jsonl

torch.set_num_threads(1)  # tiny models: a second thread only adds sync overhead on a busy machine


def encoder_spec(model: Path, train: Path, valid: Path | None, out: Path, **kw: object) -> TrainSpec:
    hp = Hyperparameters(n_epochs=6, batch_size=2, learning_rate_multiplier=30.0)
    return TrainSpec(
        base_model=str(model), training_file=train, validation_file=valid, output_dir=out, hyperparameters=hp, **kw
    )  # type: ignore[arg-type]


def learner_for(model: Path, answers: list[str]) -> EncoderLearner:
    return EncoderLearner(model, _load_tokenizer(model), detect_task(answers), "cpu", max_length=32)


def test_single_label_encoder_learns_and_saves_a_pooled_classifier(tiny_encoder: Path, tmp_path: Path) -> None:
    train = write_jsonl(tmp_path / "t.jsonl", sentiment_records(4, prefix="Sentiment: "))
    valid = write_jsonl(tmp_path / "v.jsonl", sentiment_records(1, prefix="Sentiment: "))
    sink = ListSink()
    result = run_training(encoder_spec(tiny_encoder, train, valid, tmp_path / "out", class_weights=True), sink)

    meta = read_checkpoint(result.final_checkpoint)
    assert (meta.family, meta.task, meta.multi_label) == ("classifier", "classification", False)
    assert meta.labels == ["negative", "neutral", "positive"] and meta.assistant_prefix == "Sentiment: "
    assert [Member.from_dict(m).name for m in meta.members] == [f"{tiny_encoder.name} tuned"]
    assert meta.prompt_shape is not None and meta.prompt_shape["system"] == "Classify the sentiment."
    assert sink.metrics[-1].train_loss < sink.metrics[0].train_loss
    assert sink.metrics[-1].classification["accuracy"] > 0.5
    assert any("learning rate 0.003 (multiplier 30), max length" in line for line in sink.messages)
    # The folder is a classifier of its own: loaded as inference loads it, it gives the validation's answers.
    members = [Member.from_dict(m) for m in meta.members]
    model = PooledClassifier.load(
        result.final_checkpoint,
        members,
        False,
        lambda member, folder: load_encoder_features(folder / member.folder / "encoder", "cpu", 32),
    )
    probs = model.probabilities(["my bag was lost again", "the flight was great thanks"])
    assert [meta.labels[i] for i in probs.argmax(1)] == ["negative", "positive"]
    assert np.allclose(probs.sum(1), 1.0, atol=1e-5)


def test_the_head_starts_as_a_calibrated_logistic_regression_on_the_frozen_features(
    tiny_encoder: Path, tmp_path: Path
) -> None:
    """LP-FT: before any step the head is the probe, scaled to be as confident on its training examples as it is,
    cross-validated, on examples it was not fitted to; so it ranks the labels as frozen features + LR would."""
    learner = learner_for(tiny_encoder, ["positive", "negative", "neutral"] * 4)
    items = learner.make_items(read_examples(write_jsonl(tmp_path / "t.jsonl", sentiment_records(2))))
    assert not learner.head.weight.any()
    learner.start_head(items)
    features = learner.features.embed_ids([it.input_ids for it in items])
    targets = np.array([it.target[0] for it in items])
    probe = fit_head(features, targets, 3, False, encoder_head.PROBE_C)
    start = learner.head.weight.detach().numpy()
    scale = float((start * probe.weight).sum() / (probe.weight**2).sum())
    np.testing.assert_allclose(start, scale * probe.weight, rtol=1e-4, atol=1e-6)  # the probe, scaled
    assert 0 < scale <= 10
    logits = learner.head(torch.from_numpy(features)).detach().numpy()
    np.testing.assert_array_equal(logits.argmax(-1), probe.logits(features).argmax(-1))
    assert (logits.argmax(-1) == targets).mean() > 0.5


def test_calibration_matches_the_cross_validated_loss() -> None:
    from localft.classifier.crossval import log_loss
    from localft.classifier.head import calibrated

    rng = np.random.default_rng(0)
    features = rng.normal(size=(40, 8)).astype(np.float32)
    targets = (features[:, 0] > 0).astype(np.int64)
    sure = fit_head(features, targets, 2, False, 1000.0)  # a near-perfect fit: overconfident on its own data
    own = log_loss(sure.probabilities(features), targets, False)
    honest = calibrated(sure, features, targets, cross_validated=0.4)
    assert own < 0.4
    assert log_loss(honest.probabilities(features), targets, False) == pytest.approx(0.4, abs=1e-3)
    np.testing.assert_array_equal(honest.logits(features).argmax(1), sure.logits(features).argmax(1))


def test_multi_label_encoder_records_thresholds(tiny_encoder: Path, tmp_path: Path) -> None:
    rows = MULTI_LABEL_ROWS * 4
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


def test_companions_are_saved_and_scored_with_the_tuned_encoder(tiny_encoder: Path, tmp_path: Path) -> None:
    """A fixed member (here TF-IDF + LR) joins the checkpoint, and validation scores the members' average."""
    examples = read_examples(write_jsonl(tmp_path / "t.jsonl", sentiment_records(2)))
    learner = learner_for(tiny_encoder, ["positive", "negative", "neutral"] * 4)
    items = learner.make_items(examples)
    tfidf = TfidfFeatures.fit([it.text for it in items])
    targets = np.array([it.target[0] for it in items])
    head = fit_head(tfidf.embed([it.text for it in items]), targets, 3, False, 10.0)
    learner.add_companions([Companion(Member("tfidf", "member-1", weight=2.0), tfidf, head)])
    alone = head.probabilities(tfidf.embed([it.text for it in items]))
    served = learner._served_probabilities(np.zeros((len(items), 3), dtype=np.float32), items)
    np.testing.assert_allclose(served, (np.full_like(alone, 1 / 3) + 2 * alone) / 3, rtol=1e-5)

    learner.save(tmp_path / "ckpt")
    assert [m.name for m in learner.members()] == [f"{tiny_encoder.name} tuned", "tfidf"]
    assert LinearHead.load(tmp_path / "ckpt" / "member-1").weight.shape == head.weight.shape
    assert TfidfFeatures.load(tmp_path / "ckpt" / "member-1").dim == tfidf.dim


def test_fine_tuning_drops_nothing_unless_told_to_keep_the_models_dropout(
    tiny_encoder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fine-tuning drops no attention weights (`ATTENTION_DROPOUT`) and no hidden states (`HIDDEN_DROPOUT`), and
    records the choice in the config it saves; None keeps the model's own."""
    from torch import nn
    from transformers import AutoConfig

    def dropouts(model: nn.Module) -> dict[str, float]:
        return {name: m.p for name, m in model.named_modules() if isinstance(m, nn.Dropout)}

    answers = ["positive", "negative"] * 5
    pretrained = AutoConfig.from_pretrained(tiny_encoder)
    assert pretrained.attention_probs_dropout_prob > 0 and pretrained.hidden_dropout_prob > 0  # else nothing shows
    assert encoder_head.ATTENTION_DROPOUT == 0.0 and encoder_head.HIDDEN_DROPOUT == 0.0
    model = learner_for(tiny_encoder, answers).model
    assert model.config.attention_probs_dropout_prob == 0.0 == model.config.hidden_dropout_prob
    ours = dropouts(model)
    assert len(ours) == 1 + 3 * len(model.encoder.layer)  # the embeddings', each layer's three
    assert set(ours.values()) == {0.0}

    monkeypatch.setattr(encoder_head, "HIDDEN_DROPOUT", None)
    layer = learner_for(tiny_encoder, answers).model.encoder.layer[0]
    assert layer.attention.self.dropout.p == 0.0
    assert layer.attention.output.dropout.p == pretrained.hidden_dropout_prob == layer.output.dropout.p
    monkeypatch.setattr(encoder_head, "ATTENTION_DROPOUT", None)
    model = learner_for(tiny_encoder, answers).model
    assert model.encoder.layer[0].attention.self.dropout.p == pretrained.attention_probs_dropout_prob


def test_frozen_word_embeddings_stay_as_they_were(
    tiny_encoder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`TRAIN_WORD_EMBEDDINGS = False` leaves the word embedding matrix out of the trained weights; the rest of the
    model and the head still train."""
    monkeypatch.setattr(encoder_head, "TRAIN_WORD_EMBEDDINGS", False)
    learner = learner_for(tiny_encoder, ["positive", "negative"] * 5)
    words = learner.model.get_input_embeddings().weight
    assert all(p is not words for group in learner.parameter_groups() for p in group.params)
    before = words.detach().clone()
    head = learner.head.weight.detach().clone()
    items = learner.make_items(read_examples(write_jsonl(tmp_path / "t.jsonl", sentiment_records(1))))
    plan = Plan(n_epochs=1, batch_size=len(items), learning_rate=1e-3, seed=0, tokens_per_forward=1 << 20)
    loop = TrainLoop(learner, items, [], plan, ListSink(), tmp_path, lambda *a: None)  # type: ignore[arg-type,return-value]
    loop._step(items, 0)
    assert torch.equal(words, before)
    assert not torch.equal(learner.head.weight, head)


def test_a_stopped_run_resumes_to_the_same_weights(tiny_encoder: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    from localft.errors import TrainingCancelled

    train = write_jsonl(tmp_path / "t.jsonl", sentiment_records(3))

    def spec(out: str, **kw: object) -> TrainSpec:
        hp = Hyperparameters(n_epochs=2, batch_size=4, learning_rate_multiplier=10.0)
        return TrainSpec(
            base_model=str(tiny_encoder), training_file=train, output_dir=tmp_path / out, hyperparameters=hp, **kw
        )  # type: ignore[arg-type]

    def weights(result: object) -> dict[str, torch.Tensor]:
        member = result.final_checkpoint / "member-0"  # type: ignore[attr-defined]
        return {**load_file(member / "encoder" / "model.safetensors"), **load_file(member / "head.safetensors")}

    full = run_training(spec("full"), ListSink())
    stopping = ListSink(stop_after_checkpoints=1)
    with pytest.raises(TrainingCancelled):
        run_training(spec("part"), stopping)
    resumed = run_training(spec("part", resume_from=stopping.checkpoints[0].path), ListSink())
    assert resumed.steps == full.steps
    wf, wr = weights(full), weights(resumed)
    for key in wf:
        torch.testing.assert_close(wr[key], wf[key], rtol=1e-5, atol=1e-6)


def test_a_checkpoint_of_an_earlier_encoder_format_starts_the_run_over(tiny_encoder: Path, tmp_path: Path) -> None:
    """A job mid-run across the upgrade to pooled classifiers: its sequence-classification checkpoint cannot be
    continued, so the run says so and trains from the start instead of failing."""
    old = tmp_path / "out" / "step-000003"
    old.mkdir(parents=True)
    write_meta(old, CheckpointMeta(str(tiny_encoder), "encoder", "classification", step=3, epoch=1))
    train = write_jsonl(tmp_path / "t.jsonl", sentiment_records(2))
    sink = ListSink()
    result = run_training(encoder_spec(tiny_encoder, train, None, tmp_path / "out", resume_from=old), sink)
    assert any("cannot be continued: starting over" in line for line in sink.messages)
    assert read_checkpoint(result.final_checkpoint).family == "classifier"
    assert result.steps == sink.metrics[-1].total_steps
