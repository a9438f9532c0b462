"""prepare on the shipped small files: templates, prefixes, multi-label, drops counted with reasons, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from localft.data.prepare import (
    DROPPED_LABEL,
    EMPTY_LABEL,
    EMPTY_TEXT,
    INVALID_FLAG,
    NOT_TOP_K,
    OUTSIDE_SPLITS,
    OVER_MAX,
    OVER_PER_CLASS,
    PrepareOptions,
    prepare_file,
)
from localft.data.validate import validate_file
from localft.errors import InvalidRequestError

ASSETS = Path(__file__).resolve().parents[2] / "assets" / "data"
LEGAL = ASSETS / "legal_cases.csv"


def legal_options(**overrides: object) -> PrepareOptions:
    values: dict[str, object] = {
        "template": "Case Title: {case_title}\n\nCase Text: {case_text}",
        "label_column": "case_outcome",
        "assistant_prefix": "Case Outcome: ",
        "system_prompt": "Classify the case outcome as one of: {labels}.",
        **overrides,
    }
    return PrepareOptions(**values)  # type: ignore[arg-type]


def test_template_system_prompt_and_assistant_prefix() -> None:
    prepared = prepare_file(LEGAL, legal_options(shuffle=False))
    assert prepared.rows_in == 30 and prepared.rows_out == 30 and prepared.dropped == {}
    assert prepared.labels == ["applied", "cited", "distinguished", "followed", "referred to"]
    assert prepared.records("train")[0] == {
        "messages": [
            {
                "role": "system",
                "content": "Classify the case outcome as one of: applied, cited, distinguished, followed, referred to.",
            },
            {
                "role": "user",
                "content": "Case Title: Harlow v Mercer Shipping Pty Ltd\n\n"
                "Case Text: The tribunal cited this decision for the proposition that a notice of termination "
                "must state the ground relied upon with reasonable clarity.",
            },
            {"role": "assistant", "content": "Case Outcome: cited"},
        ]
    }


def test_legacy_prompt_completion_output() -> None:
    prepared = prepare_file(LEGAL, legal_options(shuffle=False, output_format="prompt_completion", system_prompt=None))
    record = prepared.records("train")[0]
    assert record["prompt"] == (
        "Case Title: Harlow v Mercer Shipping Pty Ltd\n\nCase Text: The tribunal cited this decision for the "
        "proposition that a notice of termination must state the ground relied upon with reasonable clarity.\n\n###\n\n"
    )
    assert record["completion"] == " Case Outcome: cited"


def test_stratified_split_is_seeded_and_disjoint() -> None:
    options = legal_options(splits=(("train", 0.6), ("validation", 0.2), ("test", 0.2)), seed=7)
    first, again = prepare_file(LEGAL, options), prepare_file(LEGAL, options)
    assert {name: len(rows) for name, rows in first.splits.items()} == {"train": 18, "validation": 6, "test": 6}
    counts = first.class_counts()
    for label in first.labels:  # 6 rows per class: 3.6 / 1.2 / 1.2 ideally, so each share is within one row
        shares = [counts[name].get(label, 0) for name in ("train", "validation", "test")]
        assert sum(shares) == 6
        assert all(abs(share - ideal) < 1 for share, ideal in zip(shares, (3.6, 1.2, 1.2), strict=True))
    lines = [example.line for rows in first.splits.values() for example in rows]
    assert len(set(lines)) == 30
    assert first.splits["train"] == again.splits["train"]
    other_seed = prepare_file(LEGAL, legal_options(splits=options.splits, seed=8))
    assert [e.line for e in other_seed.splits["train"]] != [e.line for e in first.splits["train"]]


def test_dirty_rows_are_dropped_and_counted_with_lines() -> None:
    prepared = prepare_file(ASSETS / "dirty.csv", PrepareOptions(text_column="text", label_column="label"))
    assert prepared.rows_in == 8 and prepared.rows_out == 4
    assert prepared.dropped == {EMPTY_TEXT: 2, EMPTY_LABEL: 2}
    assert prepared.dropped_lines == {EMPTY_TEXT: [3, 7], EMPTY_LABEL: [6, 9]}
    texts = sorted(example.text for example in prepared.splits["train"])
    assert texts == ["a comment\nover two lines", "seats were comfy", "the flight was great", "which gate"]


def test_multi_label_answers_and_none() -> None:
    options = PrepareOptions(text_column="comment", label_columns=("toxic", "insult", "threat"), shuffle=False)
    prepared = prepare_file(ASSETS / "multilabel.csv", options)
    answers = [(example.text, example.answer) for example in prepared.splits["train"]]
    assert answers == [
        ("you are lovely", "none"),
        ("you idiot", "toxic,insult"),
        ("i will find you", "toxic,threat"),
        ("nice edit", "none"),
        ("what a moron", "toxic,insult"),
    ]
    assert prepared.dropped == {INVALID_FLAG: 1, EMPTY_TEXT: 1, EMPTY_LABEL: 1}
    assert prepared.dropped_lines == {INVALID_FLAG: [7], EMPTY_TEXT: [8], EMPTY_LABEL: [9]}
    assert prepared.class_counts()["train"] == {"toxic": 3, "insult": 2, "none": 2, "threat": 1}


def test_multi_label_drop_and_top_k_select_label_columns() -> None:
    base = {"text_column": "comment", "label_columns": ("toxic", "insult", "threat"), "shuffle": False}
    dropped = prepare_file(ASSETS / "multilabel.csv", PrepareOptions(**base, drop_labels=("threat",)))  # type: ignore[arg-type]
    assert dropped.labels == ["toxic", "insult"]
    assert [e.answer for e in dropped.splits["train"]][2] == "toxic"
    top = prepare_file(ASSETS / "multilabel.csv", PrepareOptions(**base, top_k=1, separator=" | "))  # type: ignore[arg-type]
    assert top.labels == ["toxic"]


def test_top_k_and_drop_label_single_label() -> None:
    prepared = prepare_file(ASSETS / "dirty.csv", PrepareOptions(text_column="text", label_column="label", top_k=1))
    assert prepared.labels == ["neutral"]  # neutral and positive have 2 rows each: ties go alphabetically
    assert prepared.dropped == {EMPTY_TEXT: 2, EMPTY_LABEL: 2, NOT_TOP_K: 2}
    prepared = prepare_file(
        ASSETS / "dirty.csv", PrepareOptions(text_column="text", label_column="label", drop_labels=("neutral",))
    )
    assert prepared.labels == ["positive"] and prepared.dropped[DROPPED_LABEL] == 2


def test_per_class_and_max_examples_are_counted_as_unused() -> None:
    prepared = prepare_file(LEGAL, legal_options(per_class=4, max_examples=15, splits=(("train", 10),)))
    assert prepared.unused == {OVER_PER_CLASS: 10, OVER_MAX: 5, OUTSIDE_SPLITS: 5}
    assert prepared.class_counts()["train"] == {
        "applied": 2,
        "cited": 2,
        "distinguished": 2,
        "followed": 2,
        "referred to": 2,
    }


def test_sample_first_takes_rows_from_the_start_of_each_class() -> None:
    prepared = prepare_file(LEGAL, legal_options(per_class=2, sample="first", shuffle=False))
    assert [example.line for example in prepared.splits["train"]] == [2, 3, 8, 9, 14, 15, 20, 21, 26, 27]


def test_written_files_validate(tmp_path: Path) -> None:
    prepared = prepare_file(LEGAL, legal_options(splits=(("train", 20), ("test", 10))))
    paths = prepared.write(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prepare.json", "test.jsonl", "train.jsonl"]
    report = validate_file(paths["train"])
    assert report.ok and report.n_examples == 20
    assert report.labels is not None and report.labels.counts == {
        f"Case Outcome: {label}": 4 for label in prepared.labels
    }
    summary = json.loads((tmp_path / "prepare.json").read_text())
    assert summary["splits"] == {"train": 20, "test": 10}


def test_missing_columns_and_bad_options_are_clear() -> None:
    with pytest.raises(InvalidRequestError) as caught:
        prepare_file(LEGAL, legal_options(template="{case_name}: {case_text}"))
    assert caught.value.message == (
        "column 'case_name' (from --template) is not in legal_cases.csv; "
        "its columns are: case_id, case_outcome, case_title, case_text"
    )
    with pytest.raises(InvalidRequestError, match="exactly one of --text-col or --template"):
        PrepareOptions(label_column="x")
    with pytest.raises(InvalidRequestError, match="exactly one of --label-col"):
        PrepareOptions(text_column="x", label_column="y", label_columns=("a",))
    with pytest.raises(InvalidRequestError, match="--per-class must be at least 1"):
        PrepareOptions(text_column="x", label_column="y", per_class=0)
    with pytest.raises(InvalidRequestError, match="only 30 remain"):
        prepare_file(LEGAL, legal_options(splits=(("train", 25), ("test", 10))))


def test_no_usable_rows_is_an_error_not_empty_files() -> None:
    with pytest.raises(InvalidRequestError) as caught:
        options = PrepareOptions(text_column="text", label_column="id", drop_labels=tuple("12345678"))
        prepare_file(ASSETS / "dirty.csv", options)
    assert caught.value.message == (
        "no usable rows in dirty.csv (label dropped (--drop-label): 6, empty text: 2); "
        "check --text-col/--template and the label options"
    )
