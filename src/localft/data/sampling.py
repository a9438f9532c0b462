"""Sampling: how many rows of each class go where, with exact integer arithmetic so counts are reproducible.

Every decision is a quota per class computed by the largest-remainder method (no float rounding drift), capped
by what the class has; the rows filling a quota are taken in pool order, which is file order (`sample="first"`)
or a seeded shuffle (`sample="random"`).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from fractions import Fraction
from typing import TypeVar

T = TypeVar("T")

SplitSpec = tuple[tuple[str, float | int], ...]


def largest_remainder(total: int, weights: dict[str, Fraction]) -> dict[str, int]:
    """Split `total` in proportion to `weights`: floors first, then one more each for the largest remainders.

    Ties go to the key that comes first in `weights`, so results never depend on hash order.
    """
    weight_sum = sum(weights.values(), Fraction(0))
    if total <= 0 or weight_sum == 0:
        return dict.fromkeys(weights, 0)
    shares = {key: (total * w) // weight_sum for key, w in weights.items()}
    remainders = {key: (total * w) % weight_sum for key, w in weights.items()}
    left = total - sum(shares.values())
    for key in sorted(weights, key=lambda k: -remainders[k])[:left]:
        shares[key] += 1
    return {key: int(share) for key, share in shares.items()}


def allocate(total: int, available: dict[str, int], *, equal: bool) -> dict[str, int]:
    """Quota per class summing to `total`: equal shares (balanced) or shares proportional to `available`
    (stratified). A class never gets more than it has; what it cannot take goes to the others.
    """
    if total > sum(available.values()):
        raise ValueError(f"cannot take {total} rows from {sum(available.values())}")
    fixed: dict[str, int] = {}
    while True:
        open_classes = [key for key in available if key not in fixed]
        weights = {key: Fraction(1 if equal else available[key]) for key in open_classes}
        shares = largest_remainder(total - sum(fixed.values()), weights)
        over = [key for key in open_classes if shares[key] > available[key]]
        if not over:
            return {key: fixed.get(key, shares.get(key, 0)) for key in available}
        for key in over:
            fixed[key] = available[key]


def split_sizes(n_rows: int, splits: SplitSpec) -> dict[str, int]:
    """Rows per split: counts are used as given, fractions of `n_rows` are rounded so that they sum to `n_rows`
    when the fractions sum to 1 (otherwise the rest stays unused)."""
    if all(isinstance(value, int) for _, value in splits):
        return {name: int(value) for name, value in splits}
    fractions = {name: Fraction(str(value)) for name, value in splits}
    covered = sum(fractions.values(), Fraction(0))
    used = n_rows if covered == 1 else int(n_rows * covered)
    return largest_remainder(used, fractions)


def parse_splits(spec: str) -> SplitSpec:
    """`"train=0.8,validation=0.1,test=0.1"` (fractions) or `"train=100,test=100"` (row counts).

    Raises ValueError with the fix when the spec is malformed.
    """
    parsed: list[tuple[str, float | int]] = []
    for part in (item.strip() for item in spec.split(",") if item.strip()):
        name, sep, value = part.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"split {part!r} must look like name=size, e.g. train=0.8 or train=100")
        try:
            number: float | int = float(value) if "." in value else int(value)
        except ValueError:
            raise ValueError(f"split size {value!r} for {name.strip()!r} is not a number") from None
        parsed.append((name.strip(), number))
    check_splits(tuple(parsed))
    return tuple(parsed)


def check_splits(splits: SplitSpec) -> None:
    """Raise ValueError unless the splits are all counts >= 1 or all fractions in (0, 1] summing to at most 1."""
    if not splits:
        raise ValueError("at least one split is needed, e.g. train=1.0")
    names = [name for name, _ in splits]
    if len(set(names)) != len(names):
        raise ValueError(f"split names repeat: {', '.join(names)}")
    kinds = {isinstance(value, int) for _, value in splits}
    if len(kinds) > 1:
        raise ValueError("use either row counts (train=100) or fractions (train=0.8) for every split, not both")
    if kinds == {True}:
        if any(int(value) < 1 for _, value in splits):
            raise ValueError("split row counts must be at least 1")
        return
    if any(not 0 < value <= 1 for _, value in splits):
        raise ValueError("split fractions must be in (0, 1]")
    if sum(Fraction(str(value)) for _, value in splits) > 1:
        raise ValueError("split fractions add up to more than 1")


def ordered_pool(items: Sequence[T], *, randomize: bool, rng: random.Random) -> list[T]:
    """The items in file order, or shuffled with the caller's seeded generator."""
    pool = list(items)
    if randomize:
        rng.shuffle(pool)
    return pool
