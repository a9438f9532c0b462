"""prepare and validate on the real shared datasets, with counts checked against each dataset's SOURCE.txt."""

from __future__ import annotations

import csv
from pathlib import Path

from localft.data.prepare import PrepareOptions, prepare_file
from localft.data.validate import validate_file

JIGSAW_LABELS = ("toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate")


def _texts_of_class(path: Path, label: str, label_col: str, text_col: str) -> list[str]:
    with path.open(encoding="utf-8", newline="") as handle:
        return [row[text_col] for row in csv.DictReader(handle) if row[label_col] == label]


def test_airline_tutorial_balanced_from_the_start_of_each_class(datasets: Path, tmp_path: Path) -> None:
    tweets = datasets / "twitter_airline_sentiment" / "Tweets.csv"
    options = PrepareOptions(
        text_column="text",
        label_column="airline_sentiment",
        balanced=True,
        sample="first",
        splits=(("train", 100), ("test", 100)),
        system_prompt="Classify the sentiment of the airline tweet as one of: {labels}.",
    )
    prepared = prepare_file(tweets, options)
    assert prepared.rows_in == 14640 and prepared.dropped == {}
    assert prepared.unused == {"beyond the split sizes": 14440}
    expected = {"negative": 34, "neutral": 33, "positive": 33}
    assert prepared.class_counts() == {"train": expected, "test": expected}
    positives = _texts_of_class(tweets, "positive", "airline_sentiment", "text")
    train_pos = [e.text for e in prepared.splits["train"] if e.answer == "positive"]
    test_pos = [e.text for e in prepared.splits["test"] if e.answer == "positive"]
    assert sorted(train_pos) == sorted(positives[:33])
    assert sorted(test_pos) == sorted(positives[33:66])
    paths = prepared.write(tmp_path)
    for name in ("train", "test"):
        report = validate_file(paths[name])
        assert report.ok and report.n_examples == 100 and report.n_epochs == 3
        assert report.labels is not None and report.labels.counts == expected


def test_airline_stratified_three_way_split(datasets: Path) -> None:
    options = PrepareOptions(
        text_column="text",
        label_column="airline_sentiment",
        splits=(("train", 0.8), ("validation", 0.1), ("test", 0.1)),
    )
    prepared = prepare_file(datasets / "twitter_airline_sentiment" / "Tweets.csv", options)
    assert {name: len(rows) for name, rows in prepared.splits.items()} == {
        "train": 11712,
        "validation": 1464,
        "test": 1464,
    }
    counts = prepared.class_counts()
    totals = {"negative": 9178, "neutral": 3099, "positive": 2363}
    for label, total in totals.items():
        assert sum(counts[name][label] for name in counts) == total
        assert abs(counts["test"][label] - total * 0.1) < 1
        assert abs(counts["validation"][label] - total * 0.1) < 1


def test_jigsaw_multi_label_with_none(datasets: Path, tmp_path: Path) -> None:
    options = PrepareOptions(
        text_column="comment_text",
        label_columns=JIGSAW_LABELS,
        none_label="none",
        system_prompt="Label the comment with the categories that apply ({labels}), or none.",
        splits=(("train", 0.8), ("test", 0.2)),
    )
    prepared = prepare_file(datasets / "jigsaw_toxic" / "train.5k.csv", options)
    assert prepared.rows_in == 5000 and prepared.rows_out == 5000 and prepared.dropped == {}
    per_label = {label: sum(c.get(label, 0) for c in prepared.class_counts().values()) for label in prepared.labels}
    # SOURCE.txt: toxic 478, severe_toxic 52, obscene 250, threat 13, insult 237, identity_hate 46, clean 4505
    assert per_label == {
        "toxic": 478,
        "severe_toxic": 52,
        "obscene": 250,
        "threat": 13,
        "insult": 237,
        "identity_hate": 46,
    }
    assert sum(c.get("none", 0) for c in prepared.class_counts().values()) == 4505
    assert {len(prepared.splits["train"]), len(prepared.splits["test"])} == {4000, 1000}
    answers = {example.answer for example in prepared.splits["train"]}
    assert "toxic,obscene,insult" in answers and "none" in answers
    paths = prepared.write(tmp_path)
    reports = [validate_file(paths[name]) for name in ("train", "test")]
    assert all(report.ok for report in reports) and reports[0].n_examples == 4000
    # validate reads the joined answers back as labels: together the two files hold the source's counts
    parts = [report.label_parts for report in reports]
    assert parts[0] is not None and parts[1] is not None
    assert {label: parts[0].counts[label] + parts[1].counts[label] for label in per_label} == per_label
    assert [p.code for p in reports[0].warnings] == ["class_imbalance"]
    assert "'threat' only 11" in reports[0].warnings[0].message
    top = prepare_file(datasets / "jigsaw_toxic" / "train.5k.csv", PrepareOptions(**{**options.__dict__, "top_k": 3}))
    assert top.labels == ["toxic", "obscene", "insult"]


def test_banking77_per_class_and_top_k(datasets: Path, tmp_path: Path) -> None:
    train = datasets / "banking77" / "train.csv"
    balanced = prepare_file(train, PrepareOptions(text_column="text", label_column="category", per_class=35))
    assert balanced.rows_in == 10003 and len(balanced.labels) == 77
    assert balanced.rows_out == 77 * 35  # the smallest class has exactly 35 (SOURCE.txt)
    assert set(balanced.class_counts()["train"].values()) == {35}
    assert balanced.unused == {"over --per-class": 10003 - 77 * 35}
    report = validate_file(balanced.write(tmp_path)["train"])
    assert report.ok and report.labels is not None
    assert report.labels.n_classes == 77 and report.labels.imbalance_ratio == 1.0
    top = prepare_file(train, PrepareOptions(text_column="text", label_column="category", top_k=10))
    assert len(top.labels) == 10
    assert top.rows_out + top.dropped["label outside the top-k (--top-k)"] == 10003
    assert min(top.class_counts()["train"].values()) >= max(
        count for label, count in _class_counts(train).items() if label not in top.labels
    )


def _class_counts(path: Path) -> dict[str, int]:
    with path.open(encoding="utf-8", newline="") as handle:
        counts: dict[str, int] = {}
        for row in csv.DictReader(handle):
            counts[row["category"]] = counts.get(row["category"], 0) + 1
        return counts


def test_emotion_semicolon_delimiter_and_sst2_tsv(datasets: Path) -> None:
    emotion = prepare_file(
        datasets / "emotion" / "train.txt",
        PrepareOptions(text_column="text", label_column="label_name", delimiter=";"),
    )
    assert emotion.rows_out == 16000
    assert emotion.class_counts()["train"] == {
        "joy": 5362,
        "sadness": 4666,
        "anger": 2159,
        "fear": 1937,
        "love": 1304,
        "surprise": 572,
    }
    sst2 = prepare_file(datasets / "sst2" / "dev.tsv", PrepareOptions(text_column="sentence", label_column="label"))
    assert sst2.rows_out == 872 and sst2.class_counts()["train"] == {"1": 444, "0": 428}


def test_airline_balanced_fractions_cut_every_class_to_the_smallest(datasets: Path) -> None:
    options = PrepareOptions(
        text_column="text", label_column="airline_sentiment", balanced=True, splits=(("train", 0.5), ("test", 0.5))
    )
    prepared = prepare_file(datasets / "twitter_airline_sentiment" / "Tweets.csv", options)
    assert prepared.rows_out == 3 * 2363  # positive, the smallest class, has 2363 tweets
    assert prepared.unused == {"over the smallest class (--balanced)": 14640 - 3 * 2363}
    counts = prepared.class_counts()
    for label in ("negative", "neutral", "positive"):
        assert counts["train"][label] + counts["test"][label] == 2363
        assert abs(counts["train"][label] - counts["test"][label]) <= 1
