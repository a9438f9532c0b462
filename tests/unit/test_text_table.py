"""Plain-text tables laid out by rich: the layout every human-facing summary shares."""

from __future__ import annotations

from localft.text_table import text_table


def test_columns_two_spaces_apart_numbers_right_aligned_no_trailing_spaces() -> None:
    text = text_table(["label", "n"], [["negative", "40"], ["neutral", "7"]], numeric=[False, True])
    assert text.split("\n") == ["label      n", "negative  40", "neutral    7"]


def test_rule_under_the_headers_and_long_cells_unwrapped() -> None:
    long = "x" * 300
    text = text_table(["model", "f1"], [[long, "0.9"]], rule=True)
    assert text.split("\n") == [f"{'model'.ljust(300)}  f1", f"{'-' * 300}  ---", f"{long}  0.9"]
