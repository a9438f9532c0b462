"""Labelling texts with a teacher model behind any OpenAI-compatible endpoint.

Each text becomes one chat completion whose system prompt lists the label options in an order shuffled per text
(and per retry round), because models favour options by position. Answers are read by `parse_label`; an answer
outside the label set is retried (same request first, through `RemoteCaller`'s retries; then, in a later round,
with a fresh shuffle) and, if it never parses, reported in `LabelRun.rejected`, never kept.

    caller = RemoteCaller(base_url=url, cache_path=Path("label-cache.jsonl"))
    run = label_texts(texts, ["positive", "negative"], model="gpt-4o-mini", caller=caller)
    write_chat_jsonl(run.labelled, Path("train.jsonl"), system_prompt(labels))
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localft.labeling.answers import parse_label
from localft.remote import MalformedResponse, RemoteCaller, Response, answer_text

DEFAULT_INSTRUCTION = (
    "Classify the user's message. Answer with exactly one of these options and nothing else:\n{labels}"
)


@dataclass(frozen=True)
class LabelledText:
    """One input row and its outcome: a label from the set, or the reason there is none."""

    index: int
    """Position in the input (0-based), so outputs can be joined back to the source rows."""
    text: str
    label: str | None
    answer: str = ""
    """The teacher's last raw answer (kept for the rejection report)."""
    error: str | None = None
    rounds: int = 1


@dataclass
class LabelRun:
    """All outcomes, in input order, plus the caller's counts (requests, retries, failures, tokens)."""

    items: list[LabelledText]
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def labelled(self) -> list[LabelledText]:
        return [item for item in self.items if item.label is not None]

    @property
    def rejected(self) -> list[LabelledText]:
        return [item for item in self.items if item.label is None]

    def label_counts(self) -> dict[str, int]:
        return dict(Counter(item.label for item in self.labelled if item.label is not None).most_common())


def describe_options(labels: Sequence[str], descriptions: Mapping[str, str] | None = None) -> str:
    """The option list of a prompt: one `- label` line each, with its description when there is one."""
    descriptions = descriptions or {}
    return "\n".join(
        f"- {label}: {descriptions[label]}" if descriptions.get(label) else f"- {label}" for label in labels
    )


def system_prompt(
    labels: Sequence[str], instruction: str = DEFAULT_INSTRUCTION, descriptions: Mapping[str, str] | None = None
) -> str:
    """The instruction with `{labels}` replaced by the option list (in the order given)."""
    return instruction.replace("{labels}", describe_options(labels, descriptions))


def shuffled(labels: Sequence[str], text: str, seed: int, round_: int) -> list[str]:
    """The options in an order that depends on the text, the seed and the round: stable across resumed runs."""
    digest = hashlib.sha256(f"{seed}\0{round_}\0{text}".encode()).digest()
    order = list(labels)
    random.Random(int.from_bytes(digest[:8], "big")).shuffle(order)
    return order


def label_request(
    text: str,
    labels: Sequence[str],
    *,
    model: str,
    seed: int = 0,
    round_: int = 0,
    instruction: str = DEFAULT_INSTRUCTION,
    descriptions: Mapping[str, str] | None = None,
    max_tokens: int = 32,
) -> dict[str, Any]:
    """The chat-completion body asking `model` to label `text` (options shuffled for this text and round)."""
    options = shuffled(labels, text, seed, round_)
    return {
        "model": model,
        "messages": [
            {"role": "system", "content": system_prompt(options, instruction, descriptions)},
            {"role": "user", "content": text},
        ],
        "temperature": 0,
        "max_tokens": max_tokens,
    }


def label_texts(
    texts: Sequence[str],
    labels: Sequence[str],
    *,
    model: str,
    caller: RemoteCaller,
    seed: int = 0,
    rounds: int = 2,
    instruction: str = DEFAULT_INSTRUCTION,
    descriptions: Mapping[str, str] | None = None,
    max_tokens: int = 32,
) -> LabelRun:
    """Label every text; texts whose answers never parse after `rounds` shuffles end up in `run.rejected`."""
    if len(set(labels)) < 2:
        raise ValueError("give at least two distinct labels")
    results: dict[int, LabelledText] = {}
    pending = list(range(len(texts)))
    for round_ in range(rounds):
        if not pending:
            break
        requests = [
            label_request(
                texts[i],
                labels,
                model=model,
                seed=seed,
                round_=round_,
                instruction=instruction,
                descriptions=descriptions,
                max_tokens=max_tokens,
            )
            for i in pending
        ]
        outcomes = caller.chat(requests, check=_label_check(labels))
        still: list[int] = []
        for i, outcome in zip(pending, outcomes, strict=True):
            # A failed request's error already quotes the teacher's last answer (see _label_check).
            answer = answer_text(outcome.response) if outcome.response is not None else ""
            label = parse_label(answer, labels) if outcome.response is not None else None
            results[i] = LabelledText(i, texts[i], label, answer, None if label else outcome.error, round_ + 1)
            if label is None:
                still.append(i)
        pending = still
    return LabelRun([results[i] for i in range(len(texts))], caller.stats.to_dict())


def _label_check(labels: Sequence[str]) -> Any:
    def check(response: Response) -> None:
        answer = answer_text(response)
        if parse_label(answer, labels) is None:
            raise MalformedResponse(f"answer {answer[:200]!r} is not one of the labels")

    return check


def write_chat_jsonl(items: Sequence[LabelledText], path: Path, system: str | None) -> int:
    """Training data from labelled texts: `{"messages": [system?, user, assistant=label]}` per line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for item in items:
            if item.label is None:
                continue
            messages = [{"role": "system", "content": system}] if system else []
            messages += [{"role": "user", "content": item.text}, {"role": "assistant", "content": item.label}]
            fh.write(json.dumps({"messages": messages}, ensure_ascii=False) + "\n")
    return sum(1 for item in items if item.label is not None)


def write_rejected(items: Sequence[LabelledText], path: Path) -> int:
    """The texts no answer could label, with the last answer and error, so nothing disappears unseen."""
    rejected = [item for item in items if item.label is None]
    with path.open("w", encoding="utf-8") as fh:
        for item in rejected:
            record = {"index": item.index, "text": item.text, "answer": item.answer, "error": item.error}
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    return len(rejected)
