"""read_table: CSV (quoted multi-line fields, encodings), TSV, JSONL, and the errors users see."""

from __future__ import annotations

from pathlib import Path

import pytest

from localft.data.readers import is_missing, read_table
from localft.errors import InvalidRequestError

ASSETS = Path(__file__).resolve().parents[2] / "assets" / "data"


def test_csv_rows_keep_the_line_where_they_start() -> None:
    table = read_table(ASSETS / "dirty.csv")
    assert table.columns == ["id", "text", "label"]
    assert [row["id"] for row in table.rows] == ["1", "2", "3", "4", "5", "6", "7", "8"]
    assert table.lines == [2, 3, 4, 6, 7, 8, 9, 10]  # row 3 spans lines 4-5
    assert table.rows[2]["text"] == "a comment\nover two lines"


def test_wrong_encoding_names_the_option_to_use() -> None:
    with pytest.raises(InvalidRequestError) as caught:
        read_table(ASSETS / "latin1.csv")
    assert caught.value.param == "encoding"
    assert "--encoding latin-1" in caught.value.message
    table = read_table(ASSETS / "latin1.csv", encoding="latin-1")
    assert table.rows[0]["text"] == "café au lait on board"


def test_tsv_keeps_quotes_as_text() -> None:
    table = read_table(ASSETS / "sst_like.tsv")
    assert table.rows[0] == {"sentence": 'it is a "fine" film ', "label": "1"}


def test_jsonl_rows_become_strings() -> None:
    table = read_table(ASSETS / "rows.jsonl")
    assert table.columns == ["text", "label", "score", "flag"]
    assert table.lines == [1, 2, 4]
    assert table.rows[0]["score"] == "0.9"
    assert table.rows[1]["score"] == ""
    assert table.rows[2]["flag"] == "1"


def test_missing_column_error_lists_the_columns() -> None:
    table = read_table(ASSETS / "dirty.csv")
    with pytest.raises(InvalidRequestError) as caught:
        table.require("tweet", "--text-col")
    assert (
        caught.value.message == "column 'tweet' (from --text-col) is not in dirty.csv; its columns are: id, text, label"
    )


def test_jsonl_input_errors_have_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text('{"text": "a"}\n{"text": \n')
    with pytest.raises(InvalidRequestError, match=r"in.jsonl line 2: invalid JSON"):
        read_table(path)


@pytest.mark.parametrize(
    ("value", "missing"), [("", True), ("  ", True), ("NaN", True), ("null", True), ("None", False), ("0", False)]
)
def test_missing_values(value: str, missing: bool) -> None:
    assert is_missing(value) is missing
