"""Cross-validation on a training file: stratified folds, out-of-fold probabilities, and their loss.

`auto` scores its candidates with them (`training.selection`), and a tuned encoder's head starts as confident as its
cross-validated probe is (`classifier.head.calibrated`).
"""

from __future__ import annotations

import random
from collections.abc import Callable

import numpy as np

FOLDS = 5
"""Folds (fewer when the data is too small for five with two examples each, but at least 2)."""

FoldProbs = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""(training indices, held-out indices) -> the held-out examples' probabilities (examples x labels)."""


def make_folds(targets: np.ndarray, multi_label: bool, seed: int) -> list[np.ndarray]:
    """Stratified folds: each label's examples dealt round the folds in a seeded order, so every fold holds about
    the same share of every label (multi-label data: of every label combination)."""
    keys = [",".join(map(str, row)) for row in targets] if multi_label else [str(t) for t in targets]
    by_key: dict[str, list[int]] = {}
    for i, key in enumerate(keys):
        by_key.setdefault(key, []).append(i)
    smallest = min(len(v) for v in by_key.values())
    k = max(2, min(FOLDS, len(targets) // 2, max(smallest, 2)))
    rng = random.Random(seed)
    folds: list[list[int]] = [[] for _ in range(k)]
    start = 0
    for key in sorted(by_key):
        members = by_key[key]
        rng.shuffle(members)
        for j, i in enumerate(members):
            folds[(start + j) % k].append(i)
        start += len(members)
    return [np.array(sorted(f), dtype=np.int64) for f in folds if f]


def out_of_fold(n_examples: int, n_labels: int, folds: list[np.ndarray], probs_for: FoldProbs) -> np.ndarray:
    """Every example's probabilities from the model fitted without its fold."""
    out = np.zeros((n_examples, n_labels), dtype=np.float32)
    for fold in folds:
        out[fold] = probs_for(np.setdiff1d(np.arange(n_examples), fold), fold)
    return out


def log_loss(probs: np.ndarray, targets: np.ndarray, multi_label: bool) -> float:
    """Mean cross-entropy of probabilities against label indices (single-label; -1 rows skipped) or a 0/1 matrix."""
    clipped = np.clip(np.asarray(probs, dtype=np.float64), 1e-7, 1 - 1e-7)
    if multi_label:
        return float(-(targets * np.log(clipped) + (1 - targets) * np.log(1 - clipped)).mean())
    known = targets >= 0
    if not known.any():
        return 0.0
    return float(-np.log(clipped[known, targets[known]]).mean())
