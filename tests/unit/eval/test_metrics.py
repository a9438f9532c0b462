"""localft.eval.metrics against scikit-learn on fixed predictions."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.preprocessing import MultiLabelBinarizer

from localft.eval.metrics import (
    OUT_OF_SET,
    classification_metrics,
    latency_stats,
    multilabel_metrics,
)

LABELS = ["negative", "neutral", "positive"]
GOLD = [
    "negative",
    "negative",
    "neutral",
    "positive",
    "positive",
    "neutral",
    "negative",
    "positive",
    "neutral",
    "negative",
]
PRED = [
    "negative",
    "neutral",
    "neutral",
    "positive",
    "Positive.",
    "negative",
    "negative",
    "neutral",
    "maybe",
    "negative",
]


def test_single_label_matches_sklearn_including_out_of_set_answers() -> None:
    m = classification_metrics(GOLD, PRED, LABELS)
    assert m.accuracy == pytest.approx(skm.accuracy_score(GOLD, PRED)) == pytest.approx(0.5)
    assert m.macro_f1 == pytest.approx(skm.f1_score(GOLD, PRED, labels=LABELS, average="macro", zero_division=0))
    assert m.weighted_f1 == pytest.approx(skm.f1_score(GOLD, PRED, labels=LABELS, average="weighted", zero_division=0))
    report = skm.classification_report(GOLD, PRED, labels=LABELS, output_dict=True, zero_division=0)
    for label in LABELS:
        ours = m.per_class[label]
        assert ours.precision == pytest.approx(report[label]["precision"])
        assert ours.recall == pytest.approx(report[label]["recall"])
        assert ours.f1 == pytest.approx(report[label]["f1-score"])
        assert ours.support == report[label]["support"]
    assert m.macro_precision == pytest.approx(report["macro avg"]["precision"])
    assert m.macro_recall == pytest.approx(report["macro avg"]["recall"])
    # Answers outside the set are listed, not mapped ("Positive." is NOT counted as positive).
    assert m.out_of_set == {"Positive.": 1, "maybe": 1} and m.n_out_of_set == 2
    sk_cm = skm.confusion_matrix(GOLD, PRED, labels=LABELS)
    cm = np.array(m.confusion)
    assert (cm[:, :3] == sk_cm).all()
    assert cm[:, 3].tolist() == [0, 1, 1]  # the OUT_OF_SET column: neutral->maybe, positive->Positive.
    assert cm.sum() == len(GOLD)
    assert m.to_dict()["confusion_columns"] == [*LABELS, OUT_OF_SET]


def test_label_never_predicted_scores_zero_and_default_labels_come_from_gold() -> None:
    m = classification_metrics(["a", "b", "c", "c"], ["a", "a", "a", "c"])
    assert m.labels == ["a", "b", "c"]
    assert m.per_class["b"].f1 == 0.0 and m.per_class["b"].precision == 0.0
    assert m.macro_f1 == pytest.approx(skm.f1_score(["a", "b", "c", "c"], ["a", "a", "a", "c"], average="macro"))


def test_bad_inputs_are_rejected() -> None:
    with pytest.raises(ValueError, match="2 gold answers but 1"):
        classification_metrics(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="not in the label set"):
        classification_metrics(["z"], ["a"], ["a", "b"])
    with pytest.raises(ValueError, match="empty"):
        classification_metrics([], [])


TOX = ["toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"]
ML_GOLD = [[], ["toxic"], ["toxic", "obscene", "insult"], [], ["toxic", "insult"], ["threat"], [], ["toxic", "obscene"]]
ML_PRED = [
    [],
    ["toxic", "insult"],
    ["toxic", "obscene"],
    ["toxic"],
    ["toxic", "insult"],
    [],
    ["rude"],
    ["toxic", "obscene"],
]


def test_multilabel_matches_sklearn() -> None:
    m = multilabel_metrics(ML_GOLD, ML_PRED, TOX)
    mlb = MultiLabelBinarizer(classes=TOX)
    y_true = mlb.fit_transform(ML_GOLD)
    y_pred = mlb.transform([[n for n in names if n in TOX] for names in ML_PRED])
    for average, ours in (("micro", m.micro_f1), ("macro", m.macro_f1), ("weighted", m.weighted_f1)):
        assert ours == pytest.approx(skm.f1_score(y_true, y_pred, average=average, zero_division=0))
    assert m.micro_precision == pytest.approx(skm.precision_score(y_true, y_pred, average="micro"))
    assert m.micro_recall == pytest.approx(skm.recall_score(y_true, y_pred, average="micro"))
    assert m.hamming_loss == pytest.approx(skm.hamming_loss(y_true, y_pred))
    # Example 6 predicts only an unknown name: sklearn sees an empty set (a match); we do not.
    assert skm.accuracy_score(y_true, y_pred) == pytest.approx(4 / 8)
    assert m.exact_match == pytest.approx(3 / 8)
    report = skm.classification_report(y_true, y_pred, target_names=TOX, output_dict=True, zero_division=0)
    for label in TOX:
        assert m.per_label[label].f1 == pytest.approx(report[label]["f1-score"])
        assert m.per_label[label].precision == pytest.approx(report[label]["precision"])
        assert m.per_label[label].support == report[label]["support"]
    assert m.out_of_set == {"rude": 1}


def test_latency_percentiles_and_throughput() -> None:
    lat = [0.1, 0.2, None, 0.3, 0.4, 1.0]
    s = latency_stats(lat, wall_s=2.0)
    values = [0.1, 0.2, 0.3, 0.4, 1.0]
    assert s.n == 5 and s.p50_s == pytest.approx(np.percentile(values, 50))
    assert s.p95_s == pytest.approx(np.percentile(values, 95)) and s.throughput_per_s == pytest.approx(2.5)
    assert latency_stats([None], 1.0).p50_s is None
