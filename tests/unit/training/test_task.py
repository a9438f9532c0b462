"""Task detection from the answers: classifier or generator, labels, assistant prefix, multi-label."""

from __future__ import annotations

from localft.training.task import common_prefix, detect_task


def test_few_short_answers_make_a_single_label_classifier() -> None:
    info = detect_task(["positive", "negative", "neutral"] * 5)
    assert info.task == "classification" and not info.multi_label
    assert info.labels == ["negative", "neutral", "positive"] and info.assistant_prefix == ""


def test_shared_leading_words_become_the_assistant_prefix() -> None:
    answers = ["Case Outcome: cited", "Case Outcome: applied", "Case Outcome: followed"] * 4
    info = detect_task(answers)
    assert info.assistant_prefix == "Case Outcome: "
    assert info.labels == ["applied", "cited", "followed"]
    assert info.label_of("Case Outcome: cited") == "cited"


def test_common_prefix_stops_at_a_word_boundary() -> None:
    assert common_prefix(["neutral", "negative"]) == ""
    assert common_prefix(["label: a", "label: b"]) == "label: "
    assert common_prefix(["same", "same"]) == ""  # never the whole answer


def test_joined_labels_make_a_multi_label_task_with_a_none_answer() -> None:
    answers = ["toxic", "toxic,insult", "none", "insult", "none", "toxic, obscene", "obscene"] * 3
    info = detect_task(answers)
    assert info.multi_label and info.label_separator == "," and info.none_label == "none"
    assert info.labels == ["insult", "obscene", "toxic"]
    assert info.label_set("toxic, obscene") == ["toxic", "obscene"] and info.label_set("none") == []


def test_commas_inside_single_labels_are_not_multi_label() -> None:
    info = detect_task(["Yes, definitely", "No, never", "Maybe"] * 4)
    assert info.task == "classification" and not info.multi_label
    assert info.labels == ["Maybe", "No, never", "Yes, definitely"]


def test_many_distinct_or_long_answers_make_a_generator() -> None:
    assert detect_task([f"answer number {i}" for i in range(30)]).task == "generation"
    assert detect_task(["a long answer " * 10, "another long answer " * 10] * 10).task == "generation"


def test_requested_task_overrides_the_rule() -> None:
    answers = ["alpha", "beta", "gamma", "delta"]  # too few examples per label for the automatic rule
    assert detect_task(answers).task == "generation"
    assert detect_task(answers, "classification").labels == ["alpha", "beta", "delta", "gamma"]
    assert detect_task(["yes", "no"] * 10, "generation").task == "generation"
