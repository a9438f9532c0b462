"""Test sets: chat JSONL whose last assistant message is the gold answer, and how answers become labels.

A line `{"messages": [system?, user, assistant]}` becomes one `Example`: the messages before the last assistant
message are the prompt, the assistant's content is the gold answer. The legacy `{"prompt", "completion"}` format
is read too (the prompt becomes one user message). Answers are parsed the way `localft prepare` writes them:
an optional assistant prefix (`Case Outcome: `), and for multi-label data the positive labels joined by a
separator with an explicit "no label" answer (`none`).
"""

from __future__ import annotations

import json
import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from localft.errors import InvalidRequestError

Normalize = Literal["exact", "lenient"]

_STRIP = string.whitespace + string.punctuation.replace("_", "").replace("-", "") + "“”‘’`"


@dataclass(frozen=True)
class AnswerFormat:
    """How a model's answer text maps to labels (mirrors `localft prepare`'s options)."""

    multi_label: bool = False
    separator: str = ","
    """Multi-label answers join the positive labels with this."""
    none_label: str = "none"
    """Multi-label answer meaning "no label applies"."""
    prefix: str = ""
    """Assistant prefix written before the label (`Case Outcome: `); stripped before matching."""
    normalize: Normalize = "exact"
    """`exact`: only surrounding whitespace is ignored. `lenient`: case, quotes and trailing punctuation too,
    and only when the result is exactly a label; anything else stays out of the set and is reported."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "multi_label": self.multi_label,
            "separator": self.separator,
            "none_label": self.none_label,
            "prefix": self.prefix,
            "normalize": self.normalize,
        }

    def _strip_prefix(self, text: str) -> str:
        text = text.strip()
        prefix = self.prefix.strip()
        if prefix and text.startswith(prefix):
            text = text[len(prefix) :]
        return text.strip()

    def _match(self, text: str, labels: Sequence[str]) -> str:
        if self.normalize == "exact" or text in labels:
            return text
        folded = text.strip(_STRIP).casefold()
        matches = [label for label in labels if label.casefold() == folded]
        return matches[0] if len(matches) == 1 else text

    def parse_single(self, text: str, labels: Sequence[str]) -> str:
        """The label an answer names, or the (stripped) answer itself when it names none."""
        return self._match(self._strip_prefix(text), labels)

    def parse_multi(self, text: str, labels: Sequence[str]) -> list[str]:
        """The label set an answer names; the none label and empty parts give an empty set."""
        body = self._strip_prefix(text)
        parts = [p.strip() for p in body.split(self.separator)] if self.separator else [body]
        names = [self._match(p, [*labels, self.none_label]) for p in parts if p]
        return sorted({n for n in names if n and n != self.none_label})


@dataclass(frozen=True)
class Example:
    """One test case: what the model is asked, and the gold answer text."""

    messages: list[dict[str, Any]]
    gold: str
    line: int

    @property
    def text(self) -> str:
        """The last user message: what a text-only baseline (TF-IDF) sees."""
        for message in reversed(self.messages):
            if message.get("role") == "user":
                return str(message.get("content") or "")
        return ""


@dataclass(frozen=True)
class TestSet:
    """Examples, the label set and the answer format, ready to score."""

    examples: list[Example]
    labels: list[str]
    answer_format: AnswerFormat = field(default_factory=AnswerFormat)
    name: str = "test"

    __test__ = False  # not a pytest class, despite the name

    @property
    def multi_label(self) -> bool:
        return self.answer_format.multi_label

    def gold_single(self) -> list[str]:
        return [self.answer_format.parse_single(e.gold, self.labels) for e in self.examples]

    def gold_multi(self) -> list[list[str]]:
        return [self.answer_format.parse_multi(e.gold, self.labels) for e in self.examples]

    def longest_answer_chars(self) -> int:
        return max((len(e.gold) for e in self.examples), default=1)


def _example(record: Any, line: int) -> Example:
    if not isinstance(record, dict):
        raise InvalidRequestError(f"line {line}: expected a JSON object, got {type(record).__name__}", param="test")
    if "messages" in record:
        messages = record["messages"]
        if not isinstance(messages, list) or not messages:
            raise InvalidRequestError(f"line {line}: `messages` must be a non-empty list", param="test")
        last = max(
            (i for i, m in enumerate(messages) if isinstance(m, dict) and m.get("role") == "assistant"), default=-1
        )
        if last < 1:
            raise InvalidRequestError(
                f"line {line}: no assistant message after the prompt; the last assistant message is the gold answer",
                param="test",
            )
        return Example([dict(m) for m in messages[:last]], str(messages[last].get("content") or ""), line)
    if "prompt" in record and "completion" in record:
        return Example([{"role": "user", "content": str(record["prompt"])}], str(record["completion"]), line)
    raise InvalidRequestError(
        f"line {line}: expected `messages` (chat format) or `prompt` and `completion`; run `localft prepare` first",
        param="test",
    )


def read_examples(path: Path) -> list[Example]:
    """Read chat (or prompt/completion) JSONL; errors name the line and the fix."""
    examples: list[Example] = []
    with path.open("r", encoding="utf-8-sig") as fh:  # a byte-order mark, as validation and training accept it
        for number, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise InvalidRequestError(f"{path}:{number}: invalid JSON ({exc.msg})", param="test") from exc
            examples.append(_example(record, number))
    if not examples:
        raise InvalidRequestError(f"{path} has no examples", param="test")
    return examples


def discover_labels(answers: Iterable[str], answer_format: AnswerFormat) -> list[str]:
    """The sorted label names used in gold answers (the none label excluded for multi-label data)."""
    found: set[str] = set()
    for answer in answers:
        if answer_format.multi_label:
            found.update(answer_format.parse_multi(answer, []))
        else:
            found.add(answer_format.parse_single(answer, []))
    found.discard("")
    return sorted(found)


def looks_multi_label(answers: Sequence[str], separator: str, none_label: str) -> bool:
    """Guess for unmarked data: some gold answer joins several names, or uses the none label."""
    return any(separator in a or a.strip() == none_label for a in answers)


def load_testset(
    path: Path,
    *,
    answer_format: AnswerFormat | None = None,
    labels: Sequence[str] | None = None,
    extra_label_sources: Sequence[Path] = (),
    multi_label: bool | None = None,
) -> TestSet:
    """A chat JSONL test set. Labels: `labels` if given, else those of the gold answers plus any in
    `extra_label_sources` (e.g. the training file, so a class missing from a small test set still counts).

    `multi_label=None` guesses from the answers (see `looks_multi_label`); pass True/False to decide.
    """
    examples = read_examples(path)
    fmt = answer_format or AnswerFormat()
    if multi_label is None:
        multi_label = looks_multi_label([e.gold for e in examples], fmt.separator, fmt.none_label)
    fmt = AnswerFormat(multi_label, fmt.separator, fmt.none_label, fmt.prefix, fmt.normalize)
    if labels is None:
        answers = [e.gold for e in examples]
        for source in extra_label_sources:
            answers.extend(e.gold for e in read_examples(source))
        labels = discover_labels(answers, fmt)
    return TestSet(examples, list(labels), fmt, name=path.stem)
