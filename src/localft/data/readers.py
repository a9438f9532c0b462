"""Tables in: CSV, TSV and JSONL files read into one shape, with the file line where each row starts.

Every value is kept as a string (JSON numbers and booleans are turned into their text), so the same row logic
serves all three formats. Missing values are not guessed by a library: `is_missing` is the one rule, applied by
the callers that decide what an empty text or label means.
"""

from __future__ import annotations

import csv
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TextIO

from localft.errors import InvalidRequestError

InputFormat = Literal["csv", "tsv", "jsonl"]

# Values that mean "no value" in exported spreadsheets and pandas dumps, compared case-insensitively after strip.
# Deliberately short: "None" or "NA" can be real labels, so they are not in it.
MISSING_VALUES = frozenset({"", "nan", "null", "<na>", "n/a"})

# Kaggle-style CSVs hold long comments in one field; the csv module's 128 KiB default is too small for some.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


@dataclass(frozen=True)
class Table:
    """Rows of string values under named columns, each row with the 1-based file line where it starts."""

    path: Path
    columns: list[str]
    rows: list[dict[str, str]]
    lines: list[int]

    def require(self, column: str, option: str) -> None:
        """Raise a clear error naming `column`, the option that asked for it and the columns that exist."""
        if column not in self.columns:
            raise InvalidRequestError(
                f"column {column!r} (from {option}) is not in {self.path.name}; "
                f"its columns are: {', '.join(self.columns)}",
                param=option,
                code="missing_column",
            )


def is_missing(value: str | None) -> bool:
    """True for an absent, empty or NaN-like value (see MISSING_VALUES)."""
    return value is None or value.strip().lower() in MISSING_VALUES


def detect_format(path: Path) -> InputFormat:
    """The input format from the file extension; anything unknown is read as CSV."""
    suffix = path.suffix.lower()
    if suffix in {".jsonl", ".ndjson"}:
        return "jsonl"
    if suffix in {".tsv", ".tab"}:
        return "tsv"
    return "csv"


def read_table(
    path: str | Path,
    *,
    encoding: str = "utf-8",
    delimiter: str | None = None,
    input_format: InputFormat | None = None,
) -> Table:
    """Read a CSV, TSV or JSONL file. Raises InvalidRequestError (never a bare decode error) on unreadable files."""
    path = Path(path)
    if not path.is_file():
        raise InvalidRequestError(f"input file not found: {path}", param="input", code="file_not_found")
    fmt = input_format or detect_format(path)
    # utf-8-sig reads files with or without the byte-order mark Excel writes.
    codec = "utf-8-sig" if encoding.lower().replace("_", "-") in {"utf-8", "utf8"} else encoding
    try:
        with path.open(encoding=codec, newline="") as handle:
            if fmt == "jsonl":
                return _read_jsonl(path, handle.read().splitlines())
            return _read_delimited(path, handle, delimiter or ("\t" if fmt == "tsv" else ","), fmt == "tsv")
    except UnicodeDecodeError as exc:
        raise InvalidRequestError(
            f"{path.name} is not valid {encoding} (byte {exc.start}: {exc.reason}); "
            "pass the file's encoding, e.g. --encoding latin-1",
            param="encoding",
            code="invalid_encoding",
        ) from exc
    except LookupError as exc:
        raise InvalidRequestError(f"unknown encoding {encoding!r}", param="encoding") from exc


def _read_delimited(path: Path, handle: TextIO, delimiter: str, tsv: bool) -> Table:
    # GLUE-style TSVs contain bare quotes inside sentences: quoting is off for TSV, as those files expect.
    reader = csv.reader(handle, delimiter=delimiter, quoting=csv.QUOTE_NONE if tsv else csv.QUOTE_MINIMAL)
    header = next(reader, None)
    if header is None:
        raise InvalidRequestError(f"{path.name} is empty", param="input", code="empty_file")
    columns = [name.strip() for name in header]
    rows: list[dict[str, str]] = []
    lines: list[int] = []
    start = reader.line_num + 1
    for values in reader:
        if values:  # csv yields [] for blank lines
            rows.append(dict(zip(columns, values, strict=False)))
            lines.append(start)
        start = reader.line_num + 1
    return Table(path=path, columns=columns, rows=rows, lines=lines)


def _read_jsonl(path: Path, raw_lines: list[str]) -> Table:
    columns: dict[str, None] = {}  # an ordered set: the first row's key order, then new keys as they appear
    rows: list[dict[str, str]] = []
    lines: list[int] = []
    for number, raw in enumerate(raw_lines, start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise InvalidRequestError(
                f"{path.name} line {number}: invalid JSON ({exc.msg} at column {exc.colno})",
                param="input",
                code="invalid_json",
            ) from exc
        if not isinstance(obj, dict):
            raise InvalidRequestError(
                f"{path.name} line {number}: expected a JSON object per line, got {type(obj).__name__}",
                param="input",
                code="data_type",
            )
        columns.update(dict.fromkeys(obj))
        rows.append({key: _as_text(value) for key, value in obj.items()})
        lines.append(number)
    if not rows:
        raise InvalidRequestError(f"{path.name} is empty", param="input", code="empty_file")
    return Table(path=path, columns=list(columns), rows=rows, lines=lines)


def _as_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, ensure_ascii=False)
