"""Exported classifiers (one encoder, TF-IDF, ensembles; ONNX) answer as localft's own `PooledClassifier` does, and
import back into a checkpoint that serves the same probabilities."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from localft.classifier import Member, PooledClassifier
from localft.classifier.features import TfidfFeatures
from localft.classifier.head import PROBE_C, fit_head
from localft.classifier.model import load_encoder_features, save_member
from localft.errors import InvalidRequestError
from localft.export import export_model
from localft.export.importing import checkpoint_from_export
from localft.training.checkpoint import CheckpointMeta, read_checkpoint, write_meta

LABELS = ["negative", "neutral", "positive"]
TRAIN = [
    ("my bag was lost again", 0),
    ("the flight was late and rude staff", 0),
    ("worst airline ever lost luggage", 0),
    ("the flight leaves at noon", 1),
    ("what gate is the plane at", 1),
    ("is there wifi on board", 1),
    ("great flight thanks to the crew", 2),
    ("lovely staff and a smooth landing", 2),
    ("thanks for the upgrade great service", 2),
]
TEXTS = [
    "lost my bag",
    "great crew",
    "which gate",
    "rude staff and late flight",
    "thanks for a smooth landing",
    "is the plane on time",
    "Über café, naïve résumé: 12 ab ab ab",
    "",
]


def build_classifier(folder: Path, encoder: Path, kinds: list[str], multi_label: bool = False) -> Path:
    """A pooled classifier checkpoint with members of `kinds` (`tfidf`, `frozen`, `tuned`) fitted on TRAIN."""
    texts = [t for t, _ in TRAIN]
    if multi_label:
        targets = np.zeros((len(TRAIN), len(LABELS)), dtype=np.int64)
        for row, (_, label) in enumerate(TRAIN):
            targets[row, label] = 1
            targets[row, (label + 1) % len(LABELS)] = row % 2
    else:
        targets = np.asarray([y for _, y in TRAIN])
    folder.mkdir(parents=True)
    members = []
    for i, kind in enumerate(kinds):
        name = f"member-{i}"
        if kind == "tfidf":
            tfidf = TfidfFeatures.fit(texts)
            member = Member("tfidf", name, weight=1.0 + i)
            save_member(folder, member, fit_head(tfidf.embed(texts), targets, 3, multi_label, PROBE_C), tfidf)
        else:
            features = load_encoder_features(encoder, "cpu", max_length=8)
            member = Member("encoder", name, base_model=str(encoder), tuned=kind == "tuned", max_length=8)
            head = fit_head(features.embed(texts), targets, 3, multi_label, PROBE_C)
            save_member(folder, member, head, features)
        members.append(member.to_dict())
    meta = CheckpointMeta(
        base_model="auto",
        family="classifier",
        task="classification",
        step=1,
        epoch=1,
        labels=LABELS,
        multi_label=multi_label,
        thresholds=[0.4, 0.5, 0.6] if multi_label else [],
        members=members,
        prompt_shape={"system": "Classify the tweet.", "prefix": "", "suffix": "", "bare": True},
    )
    write_meta(folder, meta)
    return folder


def served(checkpoint: Path, texts: list[str]) -> np.ndarray:
    """Probabilities as localft's inference computes them (float32 weights)."""
    meta = read_checkpoint(checkpoint)
    members = [Member.from_dict(m) for m in meta.members]

    def load(member: Member, folder: Path) -> object:
        source = folder / member.folder / "encoder" if member.tuned else Path(member.base_model)
        return load_encoder_features(source, "cpu", member.max_length)

    return PooledClassifier.load(checkpoint, members, meta.multi_label, load).probabilities(texts)  # type: ignore[arg-type]


KINDS = [["tuned"], ["frozen"], ["tfidf"], ["tuned", "frozen", "tfidf"]]


@pytest.mark.parametrize("kinds", KINDS, ids=["+".join(k) for k in KINDS])
def test_the_pipeline_of_an_export_gives_localfts_probabilities(
    tiny_encoder: Path, tmp_path: Path, kinds: list[str]
) -> None:
    from transformers import pipeline

    checkpoint = build_classifier(tmp_path / "ckpt", tiny_encoder, kinds)
    out = tmp_path / "export"
    assert export_model(checkpoint, out, tmp_path / "cache") == "classifier"
    config = json.loads((out / "config.json").read_text())
    assert config["id2label"] == {"0": "negative", "1": "neutral", "2": "positive"}
    classify = pipeline("text-classification", model=str(out), trust_remote_code=True)
    expected = served(checkpoint, TEXTS)
    for text, want in zip(TEXTS, expected, strict=True):
        got = {d["label"]: d["score"] for d in classify(text, top_k=None)}
        assert [got[label] for label in LABELS] == pytest.approx(want.tolist(), abs=1e-4)
    assert (out / "localft.json").is_file()


def test_a_multi_label_export_keeps_its_thresholds_and_sigmoids(tiny_encoder: Path, tmp_path: Path) -> None:
    from transformers import pipeline

    checkpoint = build_classifier(tmp_path / "ckpt", tiny_encoder, ["tuned", "tfidf"], multi_label=True)
    out = tmp_path / "export"
    export_model(checkpoint, out, tmp_path / "cache")
    config = json.loads((out / "config.json").read_text())
    assert config["problem_type"] == "multi_label_classification" and config["thresholds"] == [0.4, 0.5, 0.6]
    classify = pipeline("text-classification", model=str(out), trust_remote_code=True)
    got = {d["label"]: d["score"] for d in classify(TEXTS[0], top_k=None)}
    assert [got[label] for label in LABELS] == pytest.approx(served(checkpoint, TEXTS[:1])[0].tolist(), abs=1e-4)


@pytest.mark.parametrize("kinds", [["tuned"], ["frozen"]])
def test_an_onnx_export_gives_the_same_logits(tiny_encoder: Path, tmp_path: Path, kinds: list[str]) -> None:
    import onnxruntime
    from transformers import AutoTokenizer

    from localft.classifier.head import probabilities

    checkpoint = build_classifier(tmp_path / "ckpt", tiny_encoder, kinds)
    out = tmp_path / "onnx"
    assert export_model(checkpoint, out, tmp_path / "cache", fmt="onnx") == "onnx"
    tokenizer = AutoTokenizer.from_pretrained(out)
    session = onnxruntime.InferenceSession(str(out / "model.onnx"))
    batch = dict(tokenizer(TEXTS, padding=True, truncation=True, return_tensors="np"))
    probs = probabilities(session.run(None, batch)[0], multi_label=False)
    assert probs == pytest.approx(served(checkpoint, TEXTS), abs=1e-4)
    assert json.loads((out / "config.json").read_text())["id2label"]["2"] == "positive"


def test_an_ensemble_with_tfidf_refuses_onnx(tiny_encoder: Path, tmp_path: Path) -> None:
    checkpoint = build_classifier(tmp_path / "ckpt", tiny_encoder, ["frozen", "tfidf"])
    with pytest.raises(InvalidRequestError, match="single encoder"):
        export_model(checkpoint, tmp_path / "onnx", tmp_path / "cache", fmt="onnx")
    assert not (tmp_path / "onnx").exists()


@pytest.mark.parametrize("kinds", [["frozen", "tfidf"], ["tuned"]])
def test_an_export_imports_back_to_the_same_answers(tiny_encoder: Path, tmp_path: Path, kinds: list[str]) -> None:
    checkpoint = build_classifier(tmp_path / "ckpt", tiny_encoder, kinds)
    out = tmp_path / "export"
    export_model(checkpoint, out, tmp_path / "cache")
    back = tmp_path / "imported"
    meta = checkpoint_from_export(out, back)
    assert meta.family == "classifier" and meta.labels == LABELS
    assert meta.prompt_shape == read_checkpoint(checkpoint).prompt_shape
    assert served(back, TEXTS) == pytest.approx(served(checkpoint, TEXTS), abs=1e-4)
