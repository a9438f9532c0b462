"""Exact and near-duplicate removal, and a small diversity report, for generated texts.

Near-duplicates are judged by the Jaccard similarity of character 3-gram sets of the normalised text, which
catches the usual teacher habit of re-emitting one example with a word or punctuation changed.
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

NEAR_DUPLICATE_THRESHOLD = 0.8


def normalize_text(text: str) -> str:
    """Case, punctuation and spacing removed: two texts equal after this are exact duplicates."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.casefold()).split())


def shingles(text: str, n: int = 3) -> frozenset[str]:
    norm = normalize_text(text)
    if len(norm) <= n:
        return frozenset({norm})
    return frozenset(norm[i : i + n] for i in range(len(norm) - n + 1))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


@dataclass
class Deduplicator:
    """Keeps texts that are neither exact nor near duplicates of any text kept before (across calls)."""

    threshold: float = NEAR_DUPLICATE_THRESHOLD
    exact: int = 0
    near: int = 0
    _seen: set[str] = field(default_factory=set)
    _kept: list[frozenset[str]] = field(default_factory=list)

    def add(self, text: str) -> bool:
        """True when `text` is new and was kept; duplicates are counted by kind."""
        norm = normalize_text(text)
        if not norm or norm in self._seen:
            self.exact += 1
            return False
        grams = shingles(text)
        if any(jaccard(grams, other) >= self.threshold for other in self._kept):
            self.near += 1
            return False
        self._seen.add(norm)
        self._kept.append(grams)
        return True


@dataclass(frozen=True)
class Diversity:
    """How varied a set of texts is: distinct-n ratios (higher is more varied) and mean pairwise similarity."""

    n_texts: int
    distinct_1: float
    """Unique words / all words."""
    distinct_2: float
    """Unique word bigrams / all word bigrams."""
    mean_similarity: float
    """Mean Jaccard similarity of 3-gram sets over (up to 2,000 sampled) pairs; lower is more varied."""
    mean_words: float

    def to_dict(self) -> dict[str, float | int]:
        return {
            "n_texts": self.n_texts,
            "distinct_1": round(self.distinct_1, 4),
            "distinct_2": round(self.distinct_2, 4),
            "mean_similarity": round(self.mean_similarity, 4),
            "mean_words": round(self.mean_words, 2),
        }


def _distinct(grams: Iterable[tuple[str, ...]]) -> float:
    items = list(grams)
    return len(set(items)) / len(items) if items else 0.0


def diversity(texts: Sequence[str], max_pairs: int = 2000, seed: int = 0) -> Diversity:
    words = [normalize_text(t).split() for t in texts]
    unigrams = (tuple(w[i : i + 1]) for w in words for i in range(len(w)))
    bigrams = (tuple(w[i : i + 2]) for w in words for i in range(len(w) - 1))
    pairs = list(itertools.combinations(range(len(texts)), 2))
    if len(pairs) > max_pairs:
        pairs = random.Random(seed).sample(pairs, max_pairs)
    grams = [shingles(t) for t in texts]
    similarity = sum(jaccard(grams[a], grams[b]) for a, b in pairs) / len(pairs) if pairs else 0.0
    return Diversity(
        n_texts=len(texts),
        distinct_1=_distinct(unigrams),
        distinct_2=_distinct(bigrams),
        mean_similarity=similarity,
        mean_words=sum(map(len, words)) / len(words) if words else 0.0,
    )
