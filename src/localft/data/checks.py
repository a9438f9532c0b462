"""Checks of one fine-tuning example, chat or legacy prompt/completion, each problem with its field and its fix.

The chat checks carry the error names of OpenAI's chat data-prep notebook (`data_type`, `missing_messages_list`,
`message_missing_key`, `message_unrecognized_key`, `unrecognized_role`, `missing_content`,
`example_missing_assistant_message`), extended with what the fine-tuning API also accepts: `tool` messages,
`tool_calls`, and `weight` (0 or 1) on assistant messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

ExampleFormat = Literal["chat", "prompt_completion"]

ROLES = ("system", "user", "assistant", "tool", "function")
MESSAGE_KEYS = frozenset({"role", "content", "name", "function_call", "tool_calls", "tool_call_id", "weight"})
CHAT_EXAMPLE_KEYS = frozenset({"messages", "tools", "parallel_tool_calls", "functions"})
LEGACY_KEYS = frozenset({"prompt", "completion"})


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the data: where (1-based line, JSON field), a stable code, what is wrong, the fix."""

    line: int | None
    code: str
    field: str | None
    message: str
    fix: str

    def to_dict(self) -> dict[str, object]:
        return {"line": self.line, "code": self.code, "field": self.field, "message": self.message, "fix": self.fix}

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line is not None else ""
        return f"{where}{self.message} ({self.code}). Fix: {self.fix}"


@dataclass
class Findings:
    """Problems of one example, split by severity."""

    line: int
    errors: list[Problem]
    warnings: list[Problem]

    def error(self, code: str, field: str | None, message: str, fix: str) -> None:
        self.errors.append(Problem(self.line, code, field, message, fix))

    def warn(self, code: str, field: str | None, message: str, fix: str) -> None:
        self.warnings.append(Problem(self.line, code, field, message, fix))


def example_format(obj: dict[str, Any]) -> ExampleFormat | None:
    """Which format an object is written in: a `messages` key means chat, prompt+completion the legacy format."""
    if "messages" in obj:
        return "chat"
    if "prompt" in obj or "completion" in obj:
        return "prompt_completion"
    return None


def check_chat(obj: dict[str, Any], found: Findings) -> None:
    """Every chat-format rule, appended to `found`."""
    messages = obj.get("messages")
    if not isinstance(messages, list) or not messages:
        found.error(
            "missing_messages_list",
            "messages",
            '"messages" must be a non-empty list of messages',
            'write {"messages": [{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}]}',
        )
        return
    for key in sorted(set(obj) - CHAT_EXAMPLE_KEYS):
        found.warn(
            "example_unrecognized_key",
            key,
            f"unrecognized top-level key {key!r} is ignored",
            f"remove it; an example may hold {', '.join(sorted(CHAT_EXAMPLE_KEYS))}",
        )
    for index, message in enumerate(messages):
        _check_message(index, message, found)
    assistants = [m for m in messages if isinstance(m, dict) and m.get("role") == "assistant"]
    if not assistants:
        found.error(
            "example_missing_assistant_message",
            "messages",
            "no assistant message: there is nothing to learn from this example",
            'end the example with {"role": "assistant", "content": "<the answer>"}',
        )
    elif all(m.get("weight") == 0 for m in assistants):
        found.warn(
            "no_trained_message",
            "messages",
            "every assistant message has weight 0, so this example trains nothing",
            "set weight 1 (or remove weight) on the assistant message to learn",
        )
    if not any(isinstance(m, dict) and m.get("role") == "user" for m in messages):
        found.warn(
            "missing_user_message",
            "messages",
            "no user message",
            "add the input the assistant answers as a user message",
        )


def _check_message(index: int, message: object, found: Findings) -> None:
    where = f"messages[{index}]"
    if not isinstance(message, dict):
        found.error(
            "message_missing_key",
            where,
            f"{where} is a JSON {_json_type(message)}, not an object with role and content",
            'write each message as {"role": "...", "content": "..."}',
        )
        return
    for key in ("role", "content"):
        if key not in message and not (key == "content" and _calls_tool(message)):
            found.error(
                "message_missing_key",
                f"{where}.{key}",
                f'{where} has no "{key}"',
                f'add "{key}" to the message',
            )
    for key in sorted(set(message) - MESSAGE_KEYS):
        found.error(
            "message_unrecognized_key",
            f"{where}.{key}",
            f"{where} has an unrecognized key {key!r}",
            f"remove it; a message may hold {', '.join(sorted(MESSAGE_KEYS))}",
        )
    role = message.get("role")
    if "role" in message and role not in ROLES:
        found.error(
            "unrecognized_role",
            f"{where}.role",
            f"{where} has role {role!r}",
            f"use one of {', '.join(ROLES)}",
        )
    content = message.get("content")
    if "content" in message and not _calls_tool(message) and (not isinstance(content, str) or not content.strip()):
        found.error(
            "missing_content",
            f"{where}.content",
            f"{where} content must be a non-empty string, got {_describe(content)}",
            "put the message text in content as a string",
        )
    if "weight" in message:
        _check_weight(where, message, found)


def _check_weight(where: str, message: dict[str, Any], found: Findings) -> None:
    weight = message["weight"]
    if isinstance(weight, bool) or weight not in (0, 1):
        found.error(
            "invalid_weight",
            f"{where}.weight",
            f"{where} weight is {weight!r}; it must be 0 (do not train on this message) or 1",
            "set weight to 0 or 1, or remove it (the default trains on every assistant message)",
        )
    elif message.get("role") != "assistant":
        found.error(
            "invalid_weight",
            f"{where}.weight",
            f"{where} has a weight but role {message.get('role')!r}; only assistant messages are weighted",
            "remove weight from non-assistant messages",
        )


def check_prompt_completion(obj: dict[str, Any], found: Findings) -> None:
    """The legacy format's rules: a string prompt and a non-empty string completion, nothing else."""
    for key in ("prompt", "completion"):
        value = obj.get(key)
        if key not in obj:
            found.error(f"missing_{key}", key, f'no "{key}" key', f'add "{key}" as a string')
        elif not isinstance(value, str) or (key == "completion" and not value.strip()):
            found.error(
                f"missing_{key}",
                key,
                f"{key} must be a {'non-empty ' if key == 'completion' else ''}string, got {_describe(value)}",
                f"put the {key} text in {key!r} as a string",
            )
    for key in sorted(set(obj) - LEGACY_KEYS):
        found.warn(
            "example_unrecognized_key",
            key,
            f"unrecognized key {key!r} is ignored",
            'a legacy example holds only "prompt" and "completion"',
        )


def answer_of(obj: dict[str, Any], fmt: ExampleFormat) -> str | None:
    """The answer an example teaches: the last trained assistant message, or the completion (stripped)."""
    if fmt == "prompt_completion":
        completion = obj.get("completion")
        return completion.strip() if isinstance(completion, str) else None
    for message in reversed(obj.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "assistant" and message.get("weight", 1) != 0:
            content = message.get("content")
            return content.strip() if isinstance(content, str) else None
    return None


def as_messages(obj: dict[str, Any], fmt: ExampleFormat) -> list[dict[str, Any]]:
    """The example as chat messages (legacy examples become one user and one assistant message), for counting."""
    if fmt == "prompt_completion":
        return [{"role": "user", "content": obj.get("prompt")}, {"role": "assistant", "content": obj.get("completion")}]
    return [m for m in obj.get("messages") or [] if isinstance(m, dict)]


def _calls_tool(message: dict[str, Any]) -> bool:
    return message.get("role") == "assistant" and bool(message.get("function_call") or message.get("tool_calls"))


def _json_type(value: object) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "null" if value is None else "object"


def _describe(value: object) -> str:
    if isinstance(value, str):
        return "an empty string"
    return f"a JSON {_json_type(value)}"
