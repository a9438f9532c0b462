"""`model: "auto"` (`training.selection`) on the tiny models: candidates scored by cross-validation on the training
file, the table in the events and the checkpoint, the winner fitted on everything and servable, resumable."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

import localft.training.auto_classifier as auto_classifier
import localft.training.selection as selection
from localft.classifier.crossval import make_folds
from localft.errors import TrainingCancelled
from localft.training import Hyperparameters, TrainSpec, run_training
from localft.training.checkpoint import read_checkpoint
from localft.training.dataset import read_examples
from localft.training.task import detect_task

from .conftest import MULTI_LABEL_ROWS, ListSink, chat, sentiment_records, write_jsonl

torch.set_num_threads(1)


@pytest.fixture
def tiny_auto(tiny_encoder: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`auto` chooses among TF-IDF and the tiny encoder, as it would among the built-in ones."""
    monkeypatch.setattr(selection, "installed_encoders", lambda: [str(tiny_encoder)])
    return tiny_encoder


def auto_spec(train: Path, out: Path, **kw: object) -> TrainSpec:
    return TrainSpec(base_model="auto", training_file=train, output_dir=out, **kw)  # type: ignore[arg-type]


def test_auto_scores_every_candidate_and_fits_the_best(tiny_auto: Path, tmp_path: Path) -> None:
    """The cheap candidates are scored, the best wins, and the encoder in it is fine-tuned from its chosen head."""
    train = write_jsonl(tmp_path / "t.jsonl", sentiment_records(4))
    valid = write_jsonl(tmp_path / "v.jsonl", sentiment_records(1))
    sink = ListSink()
    result = run_training(auto_spec(train, tmp_path / "out", validation_file=valid), sink)

    table = next(m for m in sink.messages if m.startswith("auto: classifiers scored"))
    for name in ("tfidf", f"{tiny_auto} frozen"):
        assert f"  {name}  " in table
    assert " tuned" not in table
    meta = read_checkpoint(result.final_checkpoint)
    assert meta.family == "classifier" and meta.labels == ["negative", "neutral", "positive"]
    assert meta.selection is not None
    rows = meta.selection["table"]
    assert {r["classifier"] for r in rows} >= {"tfidf", f"{tiny_auto} frozen"}
    best = max(rows, key=lambda r: (r["score"], -r["seconds"]))
    assert f"auto: chose {best['classifier']}" in table
    expected = f"{tiny_auto} tuned" if f"{tiny_auto} frozen" in best["classifier"] else best["classifier"]
    assert meta.selection["classifier"] == expected == result.hyperparameters["classifier"]
    if "tuned" in expected:
        assert any(f"auto: fine-tuning {tiny_auto} from its chosen head" in m for m in sink.messages)
        assert result.steps > 1
    assert sorted(m["folder"] for m in meta.members) == [f"member-{i}" for i in range(len(meta.members))]
    assert sink.checkpoints and sink.metrics[-1].classification["accuracy"] > 0.5


def test_an_affordable_llm_is_scored_as_a_candidate(
    tiny_auto: Path, tiny_causal_lm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """LoRA on the default LLM is a candidate where the budget affords it (here the tiny LLM, a large budget); it is
    scored by its label probabilities on the held-out folds like the others, and joins no ensemble."""
    monkeypatch.setattr(selection, "DEFAULT_BASE_MODEL", str(tiny_causal_lm))
    monkeypatch.setattr(selection, "is_installed_name", lambda name: True)
    monkeypatch.setattr(selection, "BUDGET_PASSES", 1e9)
    train = write_jsonl(tmp_path / "t.jsonl", sentiment_records(2))
    sink = ListSink()
    spec = replace(auto_spec(train, tmp_path / "out"), hyperparameters=Hyperparameters(n_epochs=1))
    result = run_training(spec, sink)
    table = next(m for m in sink.messages if m.startswith("auto: classifiers scored"))
    lora = f"{tiny_causal_lm} lora"
    assert f"  {lora}  " in table and "(5 folds" in table.split(lora)[1].split("\n")[0]
    assert not any(lora in line and "+" in line for line in table.splitlines())
    assert read_checkpoint(result.final_checkpoint).family in {"classifier", "causal_lm"}


def test_with_no_budget_for_tuning_a_frozen_choice_is_written_at_once(
    tiny_auto: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(selection, "TUNING_BUDGET_PASSES", 0.0)
    train = write_jsonl(tmp_path / "t.jsonl", sentiment_records(4))
    valid = write_jsonl(tmp_path / "v.jsonl", sentiment_records(1))
    sink = ListSink()
    result = run_training(auto_spec(train, tmp_path / "out", validation_file=valid), sink)
    meta = read_checkpoint(result.final_checkpoint)
    assert result.final_checkpoint.name == "step-000001" and result.steps == 1
    assert all(not m["tuned"] for m in meta.members)
    assert "tuned" not in meta.selection["classifier"]  # type: ignore[index]
    assert sink.metrics[-1].classification["accuracy"] == pytest.approx(meta.metrics["full_valid_accuracy"])
    assert sink.metrics[-1].full_valid_loss is not None and sink.metrics[-1].full_valid_loss > 0
    assert len(sink.checkpoints) == 1


def test_the_chosen_frozen_encoder_is_fine_tuned_from_its_head(
    tiny_auto: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where one run fits the tuning budget, the chosen frozen encoder is fine-tuned from the same head and served
    alone; over it, the frozen choice stays."""
    train = write_jsonl(tmp_path / "t.jsonl", sentiment_records(4))
    sink = ListSink()
    chosen = selection.Candidate("frozen", str(tiny_auto), selection.HeadRecipe(names=20.0))
    selector = selection.Selector(
        read_examples(train), [], detect_task(["positive", "negative", "neutral"] * 4),
        auto_spec(train, tmp_path / "out"), sink,
    )  # fmt: skip
    tuned = selector._tuned_in_place([selection.Candidate("tfidf"), chosen])
    assert tuned == [selection.Candidate("tuned", str(tiny_auto), chosen.head)]
    monkeypatch.setattr(selection, "TUNING_BUDGET_PASSES", 0.0)
    assert selector._tuned_in_place([chosen]) == [chosen]
    assert any(f"auto: tuning {tiny_auto} is over the compute budget" in m for m in sink.messages)


def test_multi_label_auto_scores_micro_f1_and_keeps_thresholds(tiny_auto: Path, tmp_path: Path) -> None:
    rows = MULTI_LABEL_ROWS * 4
    train = write_jsonl(tmp_path / "t.jsonl", [chat(t, a) for t, a in rows])
    sink = ListSink()
    result = run_training(auto_spec(train, tmp_path / "out"), sink)
    assert any("(micro_f1 on" in m for m in sink.messages)
    meta = read_checkpoint(result.final_checkpoint)
    assert meta.multi_label and len(meta.thresholds) == 3


def test_free_text_answers_fine_tune_the_default_llm(
    tiny_causal_lm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(auto_classifier, "DEFAULT_BASE_MODEL", str(tiny_causal_lm))
    records = [
        chat(f"say something about {w}", f"here is a long free answer about {w} number {i}")
        for i, w in enumerate(["bags", "gates", "flights", "crews", "seats", "meals", "delays", "fares"] * 2)
    ]
    train = write_jsonl(tmp_path / "t.jsonl", records)
    sink = ListSink()
    spec = replace(auto_spec(train, tmp_path / "out"), hyperparameters=Hyperparameters(n_epochs=1))
    result = run_training(spec, sink)
    assert any("free text, not labels" in m for m in sink.messages)
    assert read_checkpoint(result.final_checkpoint).family == "causal_lm"


def test_a_resumed_auto_job_trains_what_it_chose(
    tiny_auto: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The choice is kept with the run: a job stopped while fine-tuning its choice resumes that fine-tune, without
    scoring the candidates again."""
    chosen = [selection.Candidate("tuned", str(tiny_auto)), selection.Candidate("tfidf")]
    calls = []

    def choose(self: selection.Selector) -> selection.Decision:
        calls.append(1)
        return selection.Decision(chosen, [{"classifier": "x", "score": 1.0, "folds": 5, "seconds": 0.0}])

    monkeypatch.setattr(selection.Selector, "run", choose)
    train = write_jsonl(tmp_path / "t.jsonl", sentiment_records(4))
    spec = auto_spec(train, tmp_path / "out", hyperparameters=Hyperparameters(n_epochs=3))
    stopping = ListSink(stop_after_checkpoints=1)
    with pytest.raises(TrainingCancelled):
        run_training(spec, stopping)
    sink = ListSink()
    result = run_training(replace(spec, resume_from=stopping.checkpoints[0].path), sink)
    assert calls == [1]
    assert f"auto: resuming the chosen classifier, {tiny_auto} tuned + tfidf" in sink.messages
    meta = read_checkpoint(result.final_checkpoint)
    assert [m["kind"] for m in meta.members] == ["encoder", "tfidf"] and meta.step == result.steps
    assert meta.selection["classifier"] == f"{tiny_auto} tuned + tfidf"  # type: ignore[index]


def test_folds_are_stratified_and_cover_every_example_once() -> None:
    targets = np.array([0] * 10 + [1] * 10 + [2] * 5)
    folds = make_folds(targets, False, seed=0)
    assert len(folds) == 5
    assert sorted(np.concatenate(folds).tolist()) == list(range(25))
    for fold in folds:
        assert sorted(np.bincount(targets[fold], minlength=3).tolist()) == [1, 2, 2]
    assert [f.tolist() for f in make_folds(targets, False, seed=0)] == [f.tolist() for f in folds]
    assert len(make_folds(np.array([0, 0, 1, 1]), False, seed=0)) == 2  # tiny data: at least two folds
