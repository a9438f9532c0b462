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
