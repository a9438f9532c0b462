"""The shape of a classifier's training prompts, and the varying part of a request that wraps its text differently.

Tutorials train with a system prompt and the bare text, then ask with no system prompt and the text inside an
instruction ("... Return only the sentiment value in small letters. tweet: <text>"). A classifier should answer
the text, not the wrapper. Training records what every example shared: the system prompt and the words every user
message starts and ends with. A request is then read back to its varying part: the trained wrapper removed when it
is there, else the text after the last field marker such as `tweet:` or `Text:`, or inside a fenced or quoted block,
else the whole user text. Encoders classify that part; LLMs are asked it in the trained wrapper.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from localft.base_models.templates import content_text, split_partial

FIELD_NAMES = (
    "text",
    "tweet",
    "review",
    "comment",
    "message",
    "sentence",
    "query",
    "question",
    "request",
    "input",
    "email",
    "post",
    "document",
    "utterance",
    "statement",
    "content",
    "passage",
    "citation",
    "ticket",
    "title",
)
"""Words that name the field holding the text to classify, as instructions write them (`tweet: ...`)."""
_FIELD = re.compile(
    r"(?:^|(?<=[\s\"'(\[{*#>]))(?:the\s+|this\s+|input\s+)?(?:" + "|".join(FIELD_NAMES) + r")s?\s*(?:\d+\s*)?[:：]",
    re.IGNORECASE,
)
_BLOCKS = (
    re.compile(r"```[a-z]*\n?(.*?)```", re.DOTALL),
    re.compile(r'"""(.*?)"""', re.DOTALL),
    re.compile(r"<(?:text|input|tweet|review|comment|document)>(.*?)</", re.DOTALL | re.IGNORECASE),
)
_QUOTES = "\"'`“”‘’«»"
_BOUNDARY = " \n\t:：-–—>|"
"""Characters a shared prefix may end at (and a shared suffix start at): words are never cut."""


@dataclass(frozen=True)
class PromptShape:
    """What every training prompt shared around the text that varied."""

    system: str | None = None
    """The system prompt every example had (None when they differed or had none)."""
    prefix: str = ""
    """Text every user message started with."""
    suffix: str = ""
    """Text every user message ended with."""
    bare: bool = True
    """No training text held a field marker or a quoted block: one in a request is part of a wrapper."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> PromptShape | None:
        if raw is None:
            return None
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in raw.items() if k in known})

    @classmethod
    def learn(cls, contexts: Sequence[list[dict[str, Any]]]) -> PromptShape:
        """The shape shared by the training examples' messages before their answer."""
        systems = {_system_text(messages) for messages in contexts}
        system = next(iter(systems)) if len(systems) == 1 else None
        texts = [user_text(messages) for messages in contexts]
        prefix = suffix = ""
        if len(texts) > 1:
            prefix = _shared_prefix(texts)
            # The suffix is the shared start of the texts read backwards (after the prefix, so they never overlap).
            suffix = _shared_prefix([t[len(prefix) :][::-1] for t in texts])[::-1]
        shape = cls(system=system or None, prefix=prefix, suffix=suffix)
        bare = all(extract_payload(inner) == inner for inner in (shape._inner(t) for t in texts))
        return cls(system=shape.system, prefix=prefix, suffix=suffix, bare=bare)

    def payload(self, messages: list[dict[str, Any]]) -> str:
        """The varying part of a request's user text (see the module's docstring)."""
        text = user_text(messages)
        if self._wrapped(text):
            inner = self._inner(text)
            same_system = _system_text(messages) == (self.system or "")
            if same_system and not (self.bare and extract_payload(inner) != inner):
                return inner
            text = inner
        return extract_payload(text, self.prefix)

    def as_trained(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """A request as the training examples were written: unchanged when it already is, else its varying part in
        the trained system prompt and wrapper (a trailing partial assistant answer is kept)."""
        history, partial = split_partial(messages)
        text = user_text(history)
        payload = self.payload(history)
        if self._wrapped(text) and _system_text(history) == (self.system or "") and payload == self._inner(text):
            return messages
        out: list[dict[str, Any]] = [{"role": "system", "content": self.system}] if self.system else []
        out.append({"role": "user", "content": f"{self.prefix}{payload}{self.suffix}"})
        return [*out, messages[-1]] if partial or len(history) < len(messages) else out

    def _inner(self, text: str) -> str:
        """The text inside the trained wrapper (the text itself where it is not wrapped)."""
        if not self._wrapped(text):
            return text.strip()
        return text[len(self.prefix) : len(text) - len(self.suffix)].strip() or text.strip()

    def _wrapped(self, text: str) -> bool:
        return (
            text.startswith(self.prefix)
            and text.endswith(self.suffix)
            and len(text) >= len(self.prefix) + len(self.suffix)
        )


def user_text(messages: list[dict[str, Any]]) -> str:
    """The text of the user messages (what an encoder classifies)."""
    return "\n".join(content_text(m) for m in messages if m.get("role") == "user")


def extract_payload(text: str, trained_prefix: str = "") -> str:
    """The text to classify inside an instruction: after the last field marker (or the trained prefix's own
    marker), or inside a fenced, triple-quoted or tagged block; the whole text when there is none."""
    for block in _BLOCKS:
        found = [m.group(1).strip() for m in block.finditer(text) if m.group(1).strip()]
        if found:
            return found[-1]
    marker = trained_prefix.strip()
    starts = [m.end() for m in _FIELD.finditer(text)]
    if marker and marker.lower() in text.lower():
        starts.append(text.lower().rindex(marker.lower()) + len(marker))
    for start in sorted(starts, reverse=True):
        rest = _unquote(text[start:].strip())
        if rest:
            return rest
    return text.strip()


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] in _QUOTES and text[-1] in _QUOTES:
        return text[1:-1].strip()
    return text


def _system_text(messages: list[dict[str, Any]]) -> str:
    return "\n".join(content_text(m) for m in messages if m.get("role") in ("system", "developer"))


def _shared_prefix(texts: Sequence[str]) -> str:
    """The longest start all texts share, cut back to end at a separator, leaving every text some of its own."""
    first, last = min(texts), max(texts)  # the common prefix of all strings is that of the extremes
    length = 0
    while length < min(len(first), len(last)) and first[length] == last[length]:
        length += 1
    shortest = min(len(t) for t in texts)
    length = min(length, shortest - 1)  # never the whole of a text
    while length > 0 and first[length - 1] not in _BOUNDARY:
        length -= 1
    return first[:length]
