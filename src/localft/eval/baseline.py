"""The simple baselines every fine-tune should beat: logistic regression (scikit-learn) on TF-IDF features, the
tutorials' classic, and on a frozen sentence encoder's mean-pooled, normalised embeddings (MiniLM), the strongest
simple few-shot method (MTEB's classification protocol).

Each is trained on the same training file as the fine-tunes (the last user message is the text, the gold answer the
label) and answers the test set in this process, one example at a time so its latency is comparable with a
model server's. Multi-label data gets one logistic regression per label (one-vs-rest, threshold 0.5).
"""

from __future__ import annotations

import pickle
import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.preprocessing import MultiLabelBinarizer

from localft.errors import InvalidRequestError
from localft.eval.runner import Prediction, RunResult, peak_rss_mb
from localft.eval.testset import Example, TestSet
from localft.remote import CallStats

BASELINE_NAME = "tfidf-logreg"
EMBEDDING_BASELINE = "minilm-logreg"
BASELINES = {BASELINE_NAME: "TF-IDF + LR", EMBEDDING_BASELINE: "frozen MiniLM + LR"}
"""Baseline name -> how tables describe it."""
EMBEDDING_ENCODER = "minilm-l6"
EMBEDDING_C = 100.0
"""The embedding baseline's inverse regularisation: normalised embeddings need a weak one (C=1 scored 82.2% on
banking77 at 10 per intent, C=100 85.9%; shared/reference/few-shot-anchors.md)."""


class _Embedder:
    """`transform(texts)` as a vectorizer has it, with a frozen encoder's features."""

    def __init__(self) -> None:
        from localft.base_models import local_model_dir
        from localft.classifier.model import load_encoder_features
        from localft.settings import Settings

        folder = local_model_dir(EMBEDDING_ENCODER, Settings.from_env().cache_dir)
        self.features = load_encoder_features(folder, "cpu", 256)

    def fit_transform(self, texts: list[str]) -> np.ndarray:
        return self.transform(texts)

    def transform(self, texts: list[str]) -> np.ndarray:
        return self.features.embed(texts)


@dataclass
class TfidfBaseline:
    """A fitted vectorizer and classifier, with the time fitting took."""

    vectorizer: Any
    classifier: Any
    labels: list[str]
    multi_label: bool
    train_s: float
    n_train: int
    name: str = BASELINE_NAME

    @property
    def model_mb(self) -> float:
        """Size of the pickled model (an encoder's weights for the embedding baseline): what it takes to keep it in
        memory, give or take."""
        if isinstance(self.vectorizer, _Embedder):
            weights = sum(p.numel() * p.element_size() for p in self.vectorizer.features.model.parameters())
            return float(weights + len(pickle.dumps(self.classifier))) / 1e6
        return len(pickle.dumps((self.vectorizer, self.classifier))) / 1e6

    def answer(self, text: str, separator: str, none_label: str) -> tuple[str, dict[str, float]]:
        """The answer text a chat model would give, and the probability of each label."""
        features = self.vectorizer.transform([text])
        probs = np.asarray(self.classifier.predict_proba(features))[0]
        by_label = {label: float(p) for label, p in zip(self.labels, probs, strict=True)}
        if not self.multi_label:
            return self.labels[int(np.argmax(probs))], by_label
        chosen = [label for label, p in by_label.items() if p >= 0.5]
        return (separator.join(chosen) if chosen else none_label), by_label


def fit_baseline(train: list[Example], testset: TestSet, *, seed: int = 0, kind: str = BASELINE_NAME) -> TfidfBaseline:
    """Fit baseline `kind` (a key of `BASELINES`) on `train` with the test set's label set and answer format."""
    fmt = testset.answer_format
    texts = [e.text for e in train]
    if len(texts) < 2:
        raise InvalidRequestError("the baseline needs at least 2 training examples", param="train")
    started = time.perf_counter()
    embedded = kind == EMBEDDING_BASELINE
    vectorizer: Any = _Embedder() if embedded else TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    features = vectorizer.fit_transform(texts)
    c = EMBEDDING_C if embedded else 1.0
    classifier: Any
    if fmt.multi_label:
        binarizer = MultiLabelBinarizer(classes=testset.labels)
        y = binarizer.fit_transform([fmt.parse_multi(e.gold, testset.labels) for e in train])
        classifier = OneVsRestClassifier(LogisticRegression(C=c, max_iter=2000, random_state=seed))
        with warnings.catch_warnings():  # a label absent from training is predicted constant: that is the point
            warnings.simplefilter("ignore", UserWarning)
            classifier.fit(features, y)
        labels = list(testset.labels)
    else:
        y_single = [fmt.parse_single(e.gold, testset.labels) for e in train]
        if len(set(y_single)) < 2:
            raise InvalidRequestError("the baseline needs at least 2 classes in the training file", param="train")
        classifier = LogisticRegression(C=c, max_iter=2000, random_state=seed)
        classifier.fit(features, y_single)
        labels = [str(c) for c in classifier.classes_]
    return TfidfBaseline(
        vectorizer, classifier, labels, fmt.multi_label, time.perf_counter() - started, len(train), kind
    )


def run_baseline(baseline: TfidfBaseline, testset: TestSet) -> RunResult:
    """Answer every test example in this process, timing each one."""
    fmt = testset.answer_format
    predictions = []
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for example in testset.examples:
        began = time.perf_counter()
        answer, probs = baseline.answer(example.text, fmt.separator, fmt.none_label)
        predictions.append(Prediction(answer, probs, time.perf_counter() - began))
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    stats = CallStats(requests=len(predictions), sent=len(predictions), wall_s=wall)
    return RunResult(baseline.name, predictions, wall, cpu, peak_rss_mb(), stats)
