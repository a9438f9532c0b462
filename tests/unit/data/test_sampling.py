"""Quotas: largest remainder, stratified and balanced allocation, split specs."""

from __future__ import annotations

from fractions import Fraction

import pytest

from localft.data.sampling import allocate, largest_remainder, parse_splits, split_sizes


def test_largest_remainder_sums_exactly_and_breaks_ties_by_order() -> None:
    assert largest_remainder(100, {"a": Fraction(1), "b": Fraction(1), "c": Fraction(1)}) == {"a": 34, "b": 33, "c": 33}
    assert largest_remainder(7, {"a": Fraction(9178), "b": Fraction(3099), "c": Fraction(2363)}) == {
        "a": 4,
        "b": 2,
        "c": 1,
    }


def test_allocate_stratified_and_balanced() -> None:
    available = {"neg": 9178, "neu": 3099, "pos": 2363}
    assert allocate(1000, available, equal=False) == {"neg": 627, "neu": 212, "pos": 161}
    assert allocate(100, available, equal=True) == {"neg": 34, "neu": 33, "pos": 33}


def test_allocate_gives_what_a_small_class_cannot_take_to_the_others() -> None:
    assert allocate(30, {"a": 100, "b": 4, "c": 100}, equal=True) == {"a": 13, "b": 4, "c": 13}
    with pytest.raises(ValueError):
        allocate(10, {"a": 3, "b": 3}, equal=True)


def test_split_sizes() -> None:
    assert split_sizes(201, (("train", 0.8), ("validation", 0.1), ("test", 0.1))) == {
        "train": 161,
        "validation": 20,
        "test": 20,
    }
    assert split_sizes(100, (("train", 0.5),)) == {"train": 50}  # the other half stays unused
    assert split_sizes(5000, (("train", 100), ("test", 100))) == {"train": 100, "test": 100}


def test_parse_splits() -> None:
    assert parse_splits("train=0.8, test=0.2") == (("train", 0.8), ("test", 0.2))
    assert parse_splits("train=100,test=100") == (("train", 100), ("test", 100))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("train", "must look like name=size"),
        ("train=0.8,test=20", "not both"),
        ("train=0.8,test=0.3", "more than 1"),
        ("train=abc", "is not a number"),
        ("train=0.5,train=0.5", "repeat"),
        ("train=0", "at least 1"),
    ],
)
def test_parse_splits_errors(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_splits(spec)
