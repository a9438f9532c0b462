"""Training data: chat JSONL (or legacy prompt/completion) to examples, and examples to token ids with a loss mask.

A causal LM sees each conversation rendered exactly as inference renders a request (`localft.base_models.templates`):
the model's chat template, or for models without one the documented plain template. The loss covers only the
assistant answers (content plus the template's end-of-turn marker, so the model learns to stop), skipping those with
`weight: 0`. The whole text is tokenized in one go, as inference scores `prompt + answer`, and character offsets
decide which tokens are answer tokens.

Sequences longer than `max_length` lose tokens from the middle of the context before the last answer (the system
prompt's start and the text right before the answer are what a classifier needs); answers are never cut unless an
answer alone is longer than `max_length`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localft.base_models.templates import TemplateKind, content_text, end_of_turn, render_prompt
from localft.errors import DataValidationError

IGNORE = -100
"""Label id for tokens that carry no loss (PyTorch's cross-entropy default `ignore_index`)."""


@dataclass(frozen=True)
class ChatExample:
    """One training conversation."""

    messages: list[dict[str, Any]]
    line: int
    """1-based line in the source file (for error messages)."""

    @property
    def answer(self) -> str:
        """The last trained assistant answer: what a classifier must learn to say."""
        trained = [m for m in self.messages if m.get("role") == "assistant" and m.get("weight", 1) != 0]
        return content_text(trained[-1]) if trained else ""

    @property
    def context(self) -> list[dict[str, Any]]:
        """The messages before the last trained answer (a classifier's input)."""
        last = max(i for i, m in enumerate(self.messages) if m.get("role") == "assistant" and m.get("weight", 1) != 0)
        return self.messages[:last]


@dataclass(frozen=True)
class Encoded:
    """Token ids and per-token targets (`IGNORE` where there is no loss)."""

    input_ids: list[int]
    labels: list[int]

    @property
    def n_targets(self) -> int:
        """Tokens the loss is computed on (the first token can never be a target: nothing predicts it)."""
        return sum(1 for t in self.labels[1:] if t != IGNORE)

    def __len__(self) -> int:
        return len(self.input_ids)


def read_examples(path: Path) -> list[ChatExample]:
    """Parse a chat or prompt/completion JSONL file; the first problem found is raised with its line number."""
    examples = []
    # utf-8-sig: a byte-order mark at the start (Windows editors write one) is read past, as `localft validate` and
    # OpenAI's own tools do.
    with Path(path).open(encoding="utf-8-sig") as handle:
        for line_no, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise _bad(path, line_no, f"is not valid JSON ({exc.msg})", "one JSON object per line") from exc
            if not isinstance(obj, dict):
                raise _bad(path, line_no, "is not a JSON object", 'write {"messages": [...]} on each line')
            examples.append(ChatExample(messages=_messages(obj, path, line_no), line=line_no))
    if not examples:
        raise DataValidationError(f"{Path(path).name} has no examples.", param="training_file", code="empty_file")
    return examples


def _messages(obj: dict[str, Any], path: Path, line_no: int) -> list[dict[str, Any]]:
    if "messages" in obj:
        messages = obj["messages"]
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            raise _bad(path, line_no, "has a `messages` that is not a list of objects", "see the chat format")
        if not any(m.get("role") == "assistant" and m.get("weight", 1) != 0 for m in messages):
            raise _bad(path, line_no, "has no assistant message to learn from", "end with an assistant message")
        return [dict(m) for m in messages]
    if "prompt" in obj and "completion" in obj:
        return [
            {"role": "user", "content": str(obj["prompt"])},
            {"role": "assistant", "content": str(obj["completion"])},
        ]
    raise _bad(path, line_no, "has neither `messages` nor `prompt`/`completion`", 'use {"messages": [...]}')


def _bad(path: Path, line_no: int, problem: str, fix: str) -> DataValidationError:
    return DataValidationError(
        f"{Path(path).name} line {line_no} {problem}: {fix}.", param="training_file", code="invalid_training_file"
    )


@dataclass(frozen=True)
class ChatEncoder:
    """Renders and tokenizes conversations for one causal LM, the same way for training and validation."""

    tokenizer: Any
    kind: TemplateKind
    max_length: int

    @property
    def end_of_turn(self) -> str:
        return end_of_turn(self.tokenizer, self.kind)

    def render(self, messages: list[dict[str, Any]]) -> tuple[str, list[tuple[int, int]], bool]:
        """The conversation's text, the character spans of trained answers, and whether to add special tokens."""
        text, special = "", True
        spans: list[tuple[int, int]] = []
        eot = self.end_of_turn
        for i, message in enumerate(messages):
            if message.get("role") != "assistant":
                continue
            prompt = render_prompt(self.tokenizer, messages[:i], self.kind)
            special = prompt.add_special_tokens
            if not prompt.text.startswith(text):
                # A template that rewrites earlier turns (some drop old reasoning): only later answers stay trainable.
                spans = []
            answer = content_text(message) + eot
            if message.get("weight", 1) != 0:
                spans.append((len(prompt.text), len(prompt.text) + len(answer)))
            text = prompt.text + answer
        return text, spans, special

    def encode(self, messages: list[dict[str, Any]]) -> Encoded:
        """Token ids with targets on the trained answers, truncated to `max_length`."""
        text, spans, special = self.render(messages)
        enc = self.tokenizer(text, add_special_tokens=special, return_offsets_mapping=True)
        ids: list[int] = list(enc["input_ids"])
        labels = [IGNORE] * len(ids)
        for t, (start, end) in enumerate(enc["offset_mapping"]):
            if end > start and any(s <= start < e for s, e in spans):
                labels[t] = ids[t]
        return truncate(Encoded(ids, labels), self.max_length)

    def prompt_and_answers(
        self, context: list[dict[str, Any]], answers: list[str]
    ) -> tuple[list[int], list[list[int]]]:
        """Token ids of a prompt and of each candidate answer after it (label scoring, as inference does it).

        Prompt and answer are tokenized together; the tokens all candidates share count as prompt.
        """
        prompt = render_prompt(self.tokenizer, context, self.kind)
        eot = self.end_of_turn
        full = self.tokenizer([prompt.text + a + eot for a in answers], add_special_tokens=prompt.add_special_tokens)
        rows: list[list[int]] = [list(ids) for ids in full["input_ids"]]
        shared = min(len(r) - 1 for r in rows)
        for row in rows[1:]:
            shared = min(
                shared, next((i for i, (a, b) in enumerate(zip(rows[0], row, strict=False)) if a != b), shared)
            )
        shared = max(shared, 1)
        budget = self.max_length - max(len(r) - shared for r in rows)
        return _squeeze(rows[0][:shared], max(budget, 2)), [r[shared:] for r in rows]


def truncate(encoded: Encoded, max_length: int) -> Encoded:
    """Drop context tokens from the middle so the sequence fits; cut an answer's end only as a last resort."""
    n = len(encoded)
    if n <= max_length:
        return encoded
    targets = [i for i, t in enumerate(encoded.labels) if t != IGNORE]
    if not targets:
        keep = _middle_out(list(range(n)), max_length)
        return Encoded([encoded.input_ids[i] for i in keep], [IGNORE for _ in keep])
    # The last answer starts at its first target after the last non-target gap.
    start = targets[-1]
    while start > 0 and encoded.labels[start - 1] != IGNORE:
        start -= 1
    answer_len = n - start
    if answer_len >= max_length - 1:
        # An answer longer than the limit: keep a little context and the answer's beginning.
        context = min(start, max(1, max_length // 8))
        keep = list(range(start - context, start)) + list(range(start, start + max_length - context))
    else:
        keep = _middle_out(list(range(start)), max_length - answer_len) + list(range(start, n))
    return Encoded([encoded.input_ids[i] for i in keep], [encoded.labels[i] for i in keep])


def _middle_out(indices: list[int], budget: int) -> list[int]:
    if len(indices) <= budget:
        return indices
    head = budget // 2
    return indices[:head] + indices[len(indices) - (budget - head) :]


def _squeeze(ids: list[int], budget: int) -> list[int]:
    return [ids[i] for i in _middle_out(list(range(len(ids))), budget)]
