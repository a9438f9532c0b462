"""A linear head over features: one row of weights per label, fitted by logistic regression.

Single-label heads are multinomial (softmax over the labels); multi-label heads are one binary regression per label
(a sigmoid each), every label weighted so its positives count as much as its negatives: in few-shot multi-label data
a rare label would otherwise never be switched on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

HEAD_FILE = "head.safetensors"
MIN_TEMPERATURE, MAX_TEMPERATURE = 0.1, 100.0
"""The range `calibrated` looks for a temperature in."""
NAMES_SCALE = 20.0
"""How much a text's cosine with a label name's embedding adds to that label's logit, in heads that use the names
(sentence encoders were trained with similarity scaled by about this)."""
PROBE_C = 10.0
"""Inverse regularisation strength of the logistic regressions localft fits on features (frozen members, and the
probe a tuned encoder's head starts from)."""
MAX_ITERATIONS = 2000
"""lbfgs iterations of a logistic regression; few-shot sets converge long before."""


@dataclass
class LinearHead:
    """`logits = features @ weight.T + bias`."""

    weight: np.ndarray
    """labels x features, float32."""
    bias: np.ndarray
    multi_label: bool

    def logits(self, features: Any) -> np.ndarray:
        logits: np.ndarray = np.asarray(features @ self.weight.T, dtype=np.float32) + self.bias
        return logits

    def probabilities(self, features: Any) -> np.ndarray:
        return probabilities(self.logits(features), self.multi_label)

    def save(self, folder: Path) -> None:
        import torch
        from safetensors.torch import save_file

        tensors = {"weight": torch.from_numpy(self.weight.copy()), "bias": torch.from_numpy(self.bias.copy())}
        save_file(tensors, str(folder / HEAD_FILE), metadata={"multi_label": str(self.multi_label)})

    @classmethod
    def load(cls, folder: Path) -> LinearHead:
        from safetensors import safe_open

        with safe_open(str(folder / HEAD_FILE), framework="np") as handle:
            multi = (handle.metadata() or {}).get("multi_label") == "True"
            return cls(handle.get_tensor("weight"), handle.get_tensor("bias"), multi)


@dataclass(frozen=True)
class HeadRecipe:
    """How a head over an encoder's frozen features is made: a logistic regression on the training examples (the
    probe), the label names' embeddings (names such as `sadness` or `card_arrival` say much about their class), or
    the sum of both."""

    probe: bool = True
    names: float = 0.0
    """The scale of the label names' cosine added to the logits (0: the names play no part)."""

    @property
    def name(self) -> str:
        parts = (["probe"] if self.probe else []) + (["label names"] if self.names else [])
        return " + ".join(parts)


HEAD_RECIPES = (HeadRecipe(), HeadRecipe(names=NAMES_SCALE), HeadRecipe(probe=False, names=NAMES_SCALE))
"""The recipes `auto` cross-validates for each encoder (`training.selection`)."""


def label_words(label: str) -> str:
    """A label as the words its embedding is taken of: `card_arrival` -> `card arrival`."""
    return " ".join(label.replace("_", " ").replace("-", " ").split())


def build_head(
    recipe: HeadRecipe,
    features: Any,
    targets: np.ndarray,
    n_labels: int,
    multi_label: bool,
    c: float,
    names: np.ndarray | None = None,
) -> LinearHead:
    """A head by `recipe`; `names` holds the label names' embeddings (labels x features), needed when it uses them."""
    if recipe.probe:
        head = fit_head(features, targets, n_labels, multi_label, c)
    else:
        zeros = np.zeros((n_labels, features.shape[1]), np.float32)
        head = LinearHead(zeros, np.zeros(n_labels, np.float32), multi_label)
    if recipe.names and names is not None:
        head = LinearHead(head.weight + recipe.names * names.astype(np.float32), head.bias, multi_label)
    return head


def calibrated(head: LinearHead, features: Any, targets: np.ndarray, cross_validated: float) -> LinearHead:
    """The head with its logits divided by the temperature at which its loss on the examples it was fitted to equals
    `cross_validated`, its loss on examples it was not fitted to: as confident on its own training data as it is on
    new data. A probe fitted to few examples is sure of all of them, and fine-tuning from it then has nothing left
    to learn (docs/studies/few-shot-classifiers.md)."""
    from localft.classifier.crossval import log_loss

    logits = head.logits(features)

    def loss(temperature: float) -> float:
        return log_loss(probabilities(logits / temperature, head.multi_label), targets, head.multi_label)

    low, high = MIN_TEMPERATURE, MAX_TEMPERATURE
    for _ in range(40):  # loss falls as the temperature falls (sharper): bisect in log space
        middle = math.sqrt(low * high)
        low, high = (middle, high) if loss(middle) < cross_validated else (low, middle)
    return LinearHead(head.weight / low, head.bias / low, head.multi_label)


def probabilities(logits: np.ndarray, multi_label: bool) -> np.ndarray:
    """Softmax over the labels, or a sigmoid per label."""
    logits = np.asarray(logits, dtype=np.float64)
    if multi_label:
        return np.asarray(1.0 / (1.0 + np.exp(-logits)), dtype=np.float32)
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return np.asarray(shifted / shifted.sum(axis=-1, keepdims=True), dtype=np.float32)


def fit_head(features: Any, targets: np.ndarray, n_labels: int, multi_label: bool, c: float) -> LinearHead:
    """Logistic regression with inverse regularisation strength `c`.

    `targets`: label indices (single-label) or an examples x labels 0/1 matrix (multi-label). Labels that the
    training rows never (or always) show get a constant: a bias at their observed rate, smoothed."""
    from sklearn.linear_model import LogisticRegression

    dim = features.shape[1]
    weight = np.zeros((n_labels, dim), dtype=np.float32)
    bias = np.zeros(n_labels, dtype=np.float32)
    if multi_label:
        for j in range(n_labels):
            column = targets[:, j]
            if 0 < column.sum() < len(column):
                model = LogisticRegression(C=c, max_iter=MAX_ITERATIONS, class_weight="balanced")
                model.fit(features, column)
                weight[j], bias[j] = model.coef_[0], model.intercept_[0]
            else:
                bias[j] = _log_odds((column.sum() + 0.5) / (len(column) + 1))
        return LinearHead(weight, bias, True)
    present = sorted(set(int(t) for t in targets))
    if len(present) == 1:  # one class seen: always it
        bias[:] = -10.0
        bias[present[0]] = 10.0
        return LinearHead(weight, bias, False)
    model = LogisticRegression(C=c, max_iter=MAX_ITERATIONS)
    model.fit(features, targets)
    coef, intercept = model.coef_, model.intercept_
    if len(present) == 2:  # sklearn keeps one row for two classes: split it into a symmetric pair
        coef = np.vstack([-coef / 2, coef / 2])
        intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
    bias[:] = -30.0  # labels without a training row are never the answer
    for row, label in enumerate(model.classes_):
        weight[int(label)], bias[int(label)] = coef[row], intercept[row]
    return LinearHead(weight, bias, False)


def _log_odds(p: float) -> float:
    return math.log(p / (1 - p))
