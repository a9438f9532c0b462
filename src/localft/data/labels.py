"""Labels: reading 0/1 label columns, joining multi-label answers, counting classes and measuring imbalance.

`prepare` uses these to build answers and the summary; `validate` uses them to describe the answers it finds.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

_TRUE = frozenset({"1", "1.0", "true", "yes", "y", "t"})
_FALSE = frozenset({"0", "0.0", "false", "no", "n", "f"})

# A file whose distinct answers are fewer than a third of its examples is treated as classification data;
# the same rule OpenAI's legacy data-prep tool used to tell classification from generation.
CLASSIFICATION_RATIO = 3
# What `prepare` joins multi-label answers with by default, and what `validate` splits them on.
MULTI_LABEL_SEPARATOR = ","
# Majority/minority count ratio from which the summary warns about imbalance.
IMBALANCE_WARNING_RATIO = 10.0


def parse_flag(value: str) -> bool | None:
    """A 0/1 (or true/false, yes/no) cell as a bool; None when the cell is neither."""
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    return None


def join_labels(positives: Sequence[str], *, separator: str, none_label: str) -> str:
    """The answer for a multi-label row: positive labels in column order, or `none_label` when there are none."""
    return separator.join(positives) if positives else none_label


def split_answer(answer: str, *, separator: str, none_label: str) -> list[str]:
    """Inverse of `join_labels`: the labels named in an answer ([] for the no-label answer)."""
    if answer == none_label:
        return []
    return [part.strip() for part in answer.split(separator) if part.strip()]


def sorted_counts(labels: Iterable[str]) -> dict[str, int]:
    """Class counts, most frequent first; ties in alphabetical order so output is stable."""
    return _ordered(Counter(labels))


def top_k(counts: dict[str, int], k: int) -> list[str]:
    """The k most frequent labels (ties broken alphabetically)."""
    return list(_ordered(counts))[: max(k, 0)]


def _ordered(counts: dict[str, int]) -> dict[str, int]:
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


@dataclass(frozen=True)
class LabelStats:
    """How answers are distributed: counts, and how lopsided they are."""

    counts: dict[str, int]
    n_examples: int

    @property
    def n_classes(self) -> int:
        return len(self.counts)

    @property
    def is_classification(self) -> bool:
        """Few distinct answers relative to examples: the answers look like class labels."""
        return self.n_examples > 0 and self.n_classes * CLASSIFICATION_RATIO <= self.n_examples

    @property
    def imbalance_ratio(self) -> float:
        """Largest class count over smallest (1.0 when balanced or with fewer than two classes)."""
        if self.n_classes < 2:
            return 1.0
        values = self.counts.values()
        return max(values) / min(values)

    def to_dict(self) -> dict[str, object]:
        return {
            "counts": self.counts,
            "n_classes": self.n_classes,
            "is_classification": self.is_classification,
            "imbalance_ratio": round(self.imbalance_ratio, 2),
        }


def label_stats(labels: Sequence[str]) -> LabelStats:
    return LabelStats(counts=sorted_counts(labels), n_examples=len(labels))


def label_parts(answers: Sequence[str], *, separator: str = MULTI_LABEL_SEPARATOR) -> LabelStats | None:
    """Per-label counts when answers look multi-label (some join labels with `separator` and the labels are few);
    an example counts once for each label it names. None for single-label or free-text answers."""
    if not any(separator in answer for answer in answers):
        return None
    parts = [part.strip() for answer in answers for part in answer.split(separator) if part.strip()]
    stats = LabelStats(counts=sorted_counts(parts), n_examples=len(answers))
    return stats if stats.is_classification else None


def describe_labels(labels: Iterable[str]) -> str:
    """How `{labels}` renders inside a system prompt: the labels joined by ', '."""
    return ", ".join(labels)
