"""What labelling reads: texts (with optional gold labels) from CSV/TSV/JSONL, and the label set.

Texts come through the data team's `read_table`, so encodings, TSV quoting and missing-value rules are the same
as `localft prepare`. A chat JSONL file (`{"messages": [...]}`) gives its last user message as the text and its
last assistant message as the gold label.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from localft.data.readers import is_missing, read_table
from localft.errors import InvalidRequestError


@dataclass(frozen=True)
class TextRows:
    """Texts to label, with gold labels when the input has them (None per row where it does not)."""

    texts: list[str]
    gold: list[str | None]
    skipped: int
    """Rows dropped because their text was empty."""

    @property
    def has_gold(self) -> bool:
        return any(g is not None for g in self.gold)


def read_texts(
    path: Path, *, text_col: str | None = "text", gold_col: str | None = None, encoding: str = "utf-8"
) -> TextRows:
    """Rows of `path` as texts; a chat JSONL is recognised by its `messages` column."""
    table = read_table(path, encoding=encoding)
    texts: list[str] = []
    gold: list[str | None] = []
    skipped = 0
    chat = "messages" in table.columns and (text_col is None or text_col not in table.columns)
    if not chat:
        table.require(text_col or "text", "--text-col")
        if gold_col:
            table.require(gold_col, "--gold-col")
    for row, line in zip(table.rows, table.lines, strict=True):
        if chat:
            text, answer = _from_messages(row.get("messages", ""), path, line)
        else:
            text = row.get(text_col or "text", "")
            answer = row.get(gold_col) if gold_col else None
        if is_missing(text):
            skipped += 1
            continue
        texts.append(text.strip())
        gold.append(None if answer is None or is_missing(answer) else answer.strip())
    return TextRows(texts, gold, skipped)


def _from_messages(raw: str, path: Path, line: int) -> tuple[str, str | None]:
    try:
        messages = json.loads(raw)
    except json.JSONDecodeError:
        messages = None
    if not isinstance(messages, list):
        raise InvalidRequestError(f"{path.name} line {line}: 'messages' is not a list of messages", param="input")
    users = [m.get("content", "") for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    answers = [m.get("content", "") for m in messages if isinstance(m, dict) and m.get("role") == "assistant"]
    return (str(users[-1]) if users else ""), (str(answers[-1]) if answers else None)


def read_labels(spec: str | None = None, path: Path | None = None) -> dict[str, str | None]:
    """The label set -> optional descriptions, from `a,b,c` or a file.

    A file may be a JSON list of labels, a JSON object label -> description, or text with one `label` or
    `label: description` per line (blank lines and `#` comments ignored).
    """
    if (spec is None) == (path is None):
        raise InvalidRequestError("give the labels either inline (--labels a,b,c) or as a file (--labels-file)")
    labels: dict[str, str | None] = {}
    if spec is not None:
        labels = {part.strip(): None for part in spec.split(",") if part.strip()}
    elif path is not None:
        raw = path.read_text(encoding="utf-8")
        try:
            data = json.loads(raw)
        except json.JSONDecodeError:
            data = None
        if isinstance(data, dict):
            labels = {str(k): (str(v) if v else None) for k, v in data.items()}
        elif isinstance(data, list):
            labels = {str(v): None for v in data}
        else:
            for text in raw.splitlines():
                text = text.strip()
                if not text or text.startswith("#"):
                    continue
                name, _, description = text.partition(":")
                labels[name.strip()] = description.strip() or None
    if len(labels) < 2:
        raise InvalidRequestError("the label set needs at least two labels", param="labels")
    return labels
