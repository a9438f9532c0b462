"""What the data asks for: a classifier (and its labels) or a generative model, read from the answers themselves.

The rule follows OpenAI's legacy data-prep tool: answers drawn from a small set (fewer distinct answers than a third of
the examples) and short make a classification task. Answers that all start with the same words (`Case Outcome: `)
share an assistant prefix, kept in front of every predicted label. Answers that join labels with a separator
(`toxic,insult`), whose parts also stand alone as answers, make a multi-label task; an answer that
never appears joined with others and reads like "none" is the no-label answer.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

CLASSIFICATION_RATIO = 3
"""Classification when distinct answers < examples / 3 (the legacy tool's rule)."""
MAX_LABEL_CHARS = 60
"""Longer answers read as free text, not labels."""
MAX_LABELS = 500
NONE_NAMES = frozenset({"none", "no label", "no_label", "nolabel", "nothing", "clean", "no labels"})
SEPARATORS = (",", ";", "|")
TaskRequest = Literal["auto", "classification", "generation"]


@dataclass(frozen=True)
class TaskInfo:
    """The task detected from the training answers."""

    task: Literal["classification", "generation"]
    labels: list[str] = field(default_factory=list)
    """Label names in a fixed order (sorted), without the assistant prefix; empty for generation."""
    assistant_prefix: str = ""
    multi_label: bool = False
    label_separator: str = ","
    none_label: str | None = None

    def label_of(self, answer: str) -> str:
        """The label (or joined label set) an answer names, without the assistant prefix."""
        return answer[len(self.assistant_prefix) :] if answer.startswith(self.assistant_prefix) else answer

    def label_set(self, answer: str) -> list[str]:
        """The labels a multi-label answer names (an empty list for the no-label answer)."""
        body = self.label_of(answer).strip()
        if self.none_label is not None and body == self.none_label:
            return []
        return [part.strip() for part in body.split(self.label_separator) if part.strip()]


def detect_task(answers: Sequence[str], requested: TaskRequest = "auto") -> TaskInfo:
    """Classification (single- or multi-label) or generation, from the training answers.

    `requested` overrides the rule: "generation" trains a free-text model even on label data, "classification"
    accepts any short answers as labels however few examples each has.
    """
    n = len(answers)
    prefix = common_prefix(answers)
    bodies = [a[len(prefix) :].strip() for a in answers]
    distinct = set(bodies)
    short = 1 < len(distinct) <= MAX_LABELS and all(0 < len(b) <= MAX_LABEL_CHARS and "\n" not in b for b in distinct)
    multi = _multi_label(bodies) if short else None
    n_classes = len(multi[2]) if multi else len(distinct)
    few = n_classes * CLASSIFICATION_RATIO <= max(n, 2 * CLASSIFICATION_RATIO)
    if requested == "generation" or not short or (requested == "auto" and not few):
        return TaskInfo("generation")
    if multi is not None:
        separator, none_label, labels = multi
        return TaskInfo(
            "classification",
            labels=labels,
            assistant_prefix=prefix,
            multi_label=True,
            label_separator=separator,
            none_label=none_label,
        )
    return TaskInfo("classification", labels=sorted(distinct), assistant_prefix=prefix)


def common_prefix(answers: Sequence[str]) -> str:
    """The words every answer starts with, ending at a space or after a colon (`Case Outcome: `)."""
    if len(answers) < 2:
        return ""
    first, last = min(answers), max(answers)  # the common prefix of all strings is that of the extremes
    length = 0
    while length < min(len(first), len(last)) and first[length] == last[length]:
        length += 1
    shared = first[:length]
    cut = max(shared.rfind(" ") + 1, shared.rfind(":") + 1, shared.rfind("\n") + 1)
    prefix = shared[:cut]
    # Never swallow a whole answer: every label must keep some text of its own.
    return prefix if all(len(a) > len(prefix) and a[len(prefix) :].strip() for a in answers) else ""


def _multi_label(bodies: Sequence[str]) -> tuple[str, str | None, list[str]] | None:
    for separator in SEPARATORS:
        joined = [b for b in bodies if separator in b]
        if not joined:
            continue
        parts = [[p.strip() for p in b.split(separator) if p.strip()] for b in bodies]
        names = Counter(p for ps in parts for p in ps)
        if any(len(ps) == 0 for ps in parts):
            continue
        # Joined answers name labels that also stand alone, or the parts are fewer than the whole answers;
        # otherwise the separator is just punctuation inside single labels ("Yes, definitely").
        alone = {ps[0] for ps in parts if len(ps) == 1}
        if len(names) >= len(set(bodies)) and not any(p.strip() in alone for b in joined for p in b.split(separator)):
            continue
        in_combination = {p for ps in parts if len(ps) > 1 for p in ps}
        none_label = next((p for p in names if p.lower() in NONE_NAMES and p not in in_combination), None)
        labels = sorted(p for p in names if p != none_label)
        return separator, none_label, labels
    return None
