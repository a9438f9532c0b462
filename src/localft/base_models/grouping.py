"""Rows of unequal length grouped into forward passes that waste little on padding.

A forward pass over a batch computes every row at the longest row's length. Padded into one pass each, the batches
of a Jigsaw fine-tune here (comments of up to 512 tokens, median 98) computed 2.4 times their real tokens.
Training, validation and inference all group their rows with `group_by_length`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypeVar

Row = TypeVar("Row")


def group_by_length(
    rows: Sequence[Row], lengths: Sequence[int], budget: float = math.inf, overhead: float = 0
) -> list[list[Row]]:
    """Rows sorted by length and cut into runs, each run one forward pass.

    A pass costs rows x its longest row tokens, plus `overhead` token-equivalents for its fixed cost (reading the
    weights, launching each layer's kernels): a small dynamic program picks the cuts with the lowest total, and
    the fewest passes among equal totals. No pass goes over `budget` padded tokens (bounding memory) unless one
    row alone is longer. The order of the rows within and across passes is by length, not the input order.
    """
    order = sorted(range(len(rows)), key=lambda i: lengths[i])
    # cost[j]: (tokens, passes) of the cheapest grouping of the j shortest rows.
    cost: list[tuple[float, int]] = [(0.0, 0)] + [(math.inf, 0)] * len(order)
    cut = [0] * (len(order) + 1)  # where that grouping's last pass starts
    for j in range(1, len(order) + 1):
        longest = lengths[order[j - 1]]
        for i in range(j - 1, -1, -1):
            padded = (j - i) * longest
            if padded > budget and j - i > 1:
                break
            option = (cost[i][0] + padded + overhead, cost[i][1] + 1)
            if option < cost[j]:
                cost[j], cut[j] = option, i
    passes: list[list[Row]] = []
    j = len(order)
    while j > 0:
        passes.append([rows[k] for k in order[cut[j] : j]])
        j = cut[j]
    return passes[::-1]
