"""Rows to training records: pure functions from a table row to an example, and from an example to JSONL.

Two record shapes come out: OpenAI's chat format (`{"messages": [...]}`) and the legacy `{"prompt", "completion"}`
format of babbage-002/davinci-002, whose conventions (a fixed separator ending the prompt, a completion starting
with a space) follow what OpenAI's legacy data-prep tool recommended.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Literal

from localft.data.labels import describe_labels

OutputFormat = Literal["chat", "prompt_completion"]
DEFAULT_PROMPT_SEPARATOR = "\n\n###\n\n"


@dataclass(frozen=True)
class Example:
    """One usable row: the user text, the answer the assistant should give, and where it came from."""

    text: str
    answer: str
    """The whole answer (for multi-label rows: the positive labels joined, or the no-label answer)."""
    labels: tuple[str, ...]
    """The classes this row counts towards in summaries (one for single-label rows)."""
    line: int
    """1-based line of the source file where the row starts."""


def template_fields(template: str) -> list[str]:
    """Column names a text template refers to, in order of first use (`{{` and `}}` are literal braces)."""
    fields: dict[str, None] = {}
    for _, name, _, _ in string.Formatter().parse(template):
        if name is not None:
            if not name:
                raise ValueError("empty placeholder {} in template: name a column, e.g. {text}")
            fields[name] = None
    return list(fields)


def render_template(template: str, row: dict[str, str]) -> str:
    """Fill a text template with the row's values (the columns must exist; `template_fields` checks that)."""
    return template.format_map(row)


def render_system_prompt(template: str, labels: list[str]) -> str:
    """The system prompt with `{labels}` replaced by the class list; other braces are left alone (JSON is fine)."""
    return template.replace("{labels}", describe_labels(labels))


def chat_record(text: str, answer: str, *, system: str | None, assistant_prefix: str) -> dict[str, object]:
    """`{"messages": [system?, user, assistant]}`; the assistant says `assistant_prefix + answer`."""
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": text})
    messages.append({"role": "assistant", "content": assistant_prefix + answer})
    return {"messages": messages}


def prompt_completion_record(
    text: str, answer: str, *, system: str | None, assistant_prefix: str, separator: str
) -> dict[str, object]:
    """Legacy `{"prompt", "completion"}`: the prompt ends with `separator`, the completion starts with a space."""
    prompt = f"{system}\n\n{text}" if system else text
    return {"prompt": prompt + separator, "completion": " " + assistant_prefix + answer}


def to_record(
    example: Example,
    *,
    output_format: OutputFormat,
    system: str | None,
    assistant_prefix: str,
    separator: str = DEFAULT_PROMPT_SEPARATOR,
) -> dict[str, object]:
    """The JSONL object for one example in the chosen output format."""
    if output_format == "prompt_completion":
        return prompt_completion_record(
            example.text, example.answer, system=system, assistant_prefix=assistant_prefix, separator=separator
        )
    return chat_record(example.text, example.answer, system=system, assistant_prefix=assistant_prefix)
