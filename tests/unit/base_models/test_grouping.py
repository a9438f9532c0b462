"""Grouping rows of unequal length into forward passes."""

from __future__ import annotations

import random

from localft.base_models.grouping import group_by_length


def test_rows_are_grouped_by_length_within_the_token_budget() -> None:
    parts = group_by_length(list("abcdef"), [10, 10, 30, 10, 10, 10], budget=60)
    assert parts == [["a", "b", "d", "e", "f"], ["c"]]  # 50 + 30 tokens, where batch order would pad to 6 x 30
    assert group_by_length(["x"], [500], budget=60) == [["x"]]  # one long item still trains


def test_a_long_row_gets_its_own_pass_only_when_that_saves_more_than_a_pass_costs() -> None:
    lengths = [100, 12, 10, 11, 9, 10, 10, 12]
    items = list(range(len(lengths)))
    assert group_by_length(items, lengths, budget=4096, overhead=16) == [[4, 2, 5, 6, 3, 1, 7], [0]]
    assert group_by_length(items, lengths, budget=4096, overhead=1000) == [[4, 2, 5, 6, 3, 1, 7, 0]]
    # Uniform lengths never gain from a split: the fewest passes the budget allows, even when passes cost nothing.
    assert group_by_length(items, [64] * 8, budget=256, overhead=0) == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert group_by_length(items, [64] * 8, budget=4096) == [items]


def test_every_row_lands_in_one_pass_and_passes_stay_within_budget() -> None:
    rng = random.Random(0)
    for _ in range(200):
        lengths = [rng.randint(1, 512) for _ in range(rng.randint(1, 32))]
        budget, overhead = rng.choice([512, 1024, 4096]), rng.choice([0, 64, 256])
        parts = group_by_length(list(range(len(lengths))), lengths, budget, overhead)
        assert sorted(i for part in parts for i in part) == list(range(len(lengths)))
        assert all(len(p) == 1 or len(p) * max(lengths[i] for i in p) <= budget for p in parts)
