"""The training budget OpenAI would pick: `n_epochs: "auto"` and the number of tokens training sees.

The rule is the one OpenAI documents in its chat fine-tuning data-prep notebook: aim for about three epochs, but
make small files run at least ~100 examples' worth of steps and big files at most ~25,000, within 1..25 epochs.
Pure functions, so the training engine resolves "auto" with the very same numbers `localft validate` prints.
Validation takes a `TrainingBudget`: OpenAI's rule when no model is named, else the family's own rule and the length
its jobs cut examples to (`localft.training.auto.training_budget`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

TARGET_EPOCHS = 3
MIN_TARGET_EXAMPLES = 100
MAX_TARGET_EXAMPLES = 25_000
MIN_DEFAULT_EPOCHS = 1
MAX_DEFAULT_EPOCHS = 25


def auto_n_epochs(n_examples: int) -> int:
    """Epochs OpenAI picks for `n_epochs: "auto"` (10 examples -> 10, 100 -> 3, 10,000 -> 2)."""
    if n_examples <= 0:
        return TARGET_EPOCHS
    if n_examples * TARGET_EPOCHS < MIN_TARGET_EXAMPLES:
        return min(MAX_DEFAULT_EPOCHS, MIN_TARGET_EXAMPLES // n_examples)
    if n_examples * TARGET_EPOCHS > MAX_TARGET_EXAMPLES:
        return max(MIN_DEFAULT_EPOCHS, MAX_TARGET_EXAMPLES // n_examples)
    return TARGET_EPOCHS


@dataclass(frozen=True)
class TrainingBudget:
    """How a job trains a file by default: the epochs `n_epochs: "auto"` gives n examples (and the rule's name, for
    reports), and the length each example is cut to, with how it is cut."""

    epochs_rule: str
    n_epochs: Callable[[int], int]
    max_length: int | None = None
    cut: str = ""
    """What training drops from an example over `max_length`, said to the user."""


OPENAI_BUDGET = TrainingBudget("OpenAI's rule", auto_n_epochs)


def trained_tokens(example_tokens: Iterable[int], *, n_epochs: int, max_tokens: int | None = None) -> int:
    """Tokens training processes: every example (truncated to `max_tokens`) once per epoch."""
    per_epoch = sum(min(tokens, max_tokens) if max_tokens else tokens for tokens in example_tokens)
    return per_epoch * n_epochs
