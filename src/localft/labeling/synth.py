"""Synthetic example inputs per class, written by a teacher model from label descriptions.

Each request asks for a batch of examples of one class, one per line. Requests carry a batch number (also sent as
`seed`) so every batch is a distinct request: a resumed run re-reads the batches it already has from the cache
and only asks for the rest. Generated lines are cleaned, then exact and near duplicates (across all classes) are
dropped; rounds continue until every class has `n_per_class` examples or `max_rounds` is reached, and the
shortfall is reported rather than padded.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localft.labeling.dedup import Deduplicator, diversity
from localft.remote import RemoteCaller, answer_text

DEFAULT_PROMPT = (
    "Write {k} new and varied examples of messages a user could send that belong to the category "
    '"{label}"{description}. Vary wording, length and tone. Write one example per line, with no numbering, '
    "no quotes and no other text."
)
_BULLET = re.compile(r"^\s*(?:[-*•]+|\(?\d+[.)\]:]|[a-z][.)])\s*", re.IGNORECASE)
MIN_CHARS = 3


@dataclass(frozen=True)
class SynthExample:
    text: str
    label: str


@dataclass
class ClassReport:
    """What happened for one class: lines generated, kept, dropped as duplicates, and what is missing."""

    label: str
    requested: int
    generated: int = 0
    kept: int = 0
    exact_duplicates: int = 0
    near_duplicates: int = 0
    diversity: dict[str, float | int] = field(default_factory=dict)

    @property
    def shortfall(self) -> int:
        return max(0, self.requested - self.kept)


@dataclass
class SynthRun:
    examples: list[SynthExample]
    classes: list[ClassReport]
    stats: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "examples": len(self.examples),
            "classes": [{**vars(c), "shortfall": c.shortfall} for c in self.classes],
            "requests": self.stats,
        }


def synth_request(
    label: str,
    description: str | None,
    *,
    model: str,
    k: int,
    batch: int,
    prompt: str = DEFAULT_PROMPT,
    temperature: float = 1.0,
    max_tokens: int = 512,
) -> dict[str, Any]:
    """The chat-completion body for batch number `batch` of class `label`."""
    content = prompt.format(k=k, label=label, description=f" ({description})" if description else "")
    return {
        "model": model,
        "messages": [{"role": "user", "content": content}],
        "temperature": temperature,
        "max_tokens": max_tokens,
        "seed": batch,
    }


def parse_examples(answer: str, label: str) -> list[str]:
    """One example per non-empty line, with bullets, numbering and wrapping quotes removed."""
    out = []
    for line in answer.splitlines():
        text = _BULLET.sub("", line).strip().strip("\"'`").strip()
        if len(text) >= MIN_CHARS and text.casefold() != label.casefold():
            out.append(text)
    return out


def synthesize(
    labels: Mapping[str, str | None],
    n_per_class: int,
    *,
    model: str,
    caller: RemoteCaller,
    per_request: int = 10,
    max_rounds: int = 5,
    prompt: str = DEFAULT_PROMPT,
    temperature: float = 1.0,
    max_tokens: int = 512,
) -> SynthRun:
    """Generate up to `n_per_class` distinct examples per label (label -> description or None)."""
    if n_per_class < 1 or per_request < 1:
        raise ValueError("n_per_class and per_request must be at least 1")
    reports = {label: ClassReport(label, n_per_class) for label in labels}
    kept: dict[str, list[str]] = {label: [] for label in labels}
    dedup = Deduplicator()
    next_batch = dict.fromkeys(labels, 0)
    for _ in range(max_rounds):
        wanted = {label: n_per_class - len(kept[label]) for label in labels if len(kept[label]) < n_per_class}
        if not wanted:
            break
        plan: list[tuple[str, dict[str, Any]]] = []
        for label, missing in wanted.items():
            for _ in range(math.ceil(missing / per_request)):
                body = synth_request(
                    label,
                    labels[label],
                    model=model,
                    k=per_request,
                    batch=next_batch[label],
                    prompt=prompt,
                    temperature=temperature,
                    max_tokens=max_tokens,
                )
                next_batch[label] += 1
                plan.append((label, body))
        outcomes = caller.chat([body for _, body in plan])
        for (label, _), outcome in zip(plan, outcomes, strict=True):
            if outcome.response is None:
                continue  # counted as a failure by the caller; the next round asks again with a new batch
            report = reports[label]
            for text in parse_examples(answer_text(outcome.response), label):
                report.generated += 1
                before = (dedup.exact, dedup.near)
                if len(kept[label]) < n_per_class and dedup.add(text):
                    kept[label].append(text)
                else:
                    report.exact_duplicates += dedup.exact - before[0]
                    report.near_duplicates += dedup.near - before[1]
    examples: list[SynthExample] = []
    for label, texts in kept.items():
        reports[label].kept = len(texts)
        reports[label].diversity = diversity(texts).to_dict()
        examples.extend(SynthExample(text, label) for text in texts)
    return SynthRun(examples, list(reports.values()), caller.stats.to_dict())


def write_examples(examples: Sequence[SynthExample], path: Path) -> None:
    """`text,label` CSV when `path` ends in .csv, else JSONL of `{"text", "label"}`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as fh:
        if path.suffix.lower() == ".csv":
            writer = csv.writer(fh)
            writer.writerow(["text", "label"])
            writer.writerows((e.text, e.label) for e in examples)
        else:
            for e in examples:
                fh.write(json.dumps({"text": e.text, "label": e.label}, ensure_ascii=False) + "\n")
