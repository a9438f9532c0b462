"""Chat messages to the text a model sees: one rendering for training and inference, so a fine-tuned model is
asked exactly as it was trained.

A conversation may end with a partial assistant message (`Case Outcome:`): the model continues after it rather
than starting a new turn. Models without a chat template (Gemma 3 base) use the documented plain template:

    {system content}\\n\\n              one block per system message, content only
    ### User:\\n{content}\\n\\n
    ### Assistant:\\n{content}{eos}\\n\\n

and the generation prompt is `### Assistant:\\n`. Encoders see only the text of the user messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

TemplateKind = Literal["model", "plain"]
PLAIN_ROLE_HEADERS = {"user": "### User:\n", "assistant": "### Assistant:\n"}
PLAIN_GENERATION_PROMPT = PLAIN_ROLE_HEADERS["assistant"]
_SENTINEL = "\u2063LOCALFT\u2063"


@dataclass(frozen=True)
class Prompt:
    """What the model sees before its answer, and the part of the answer the caller already wrote."""

    text: str
    """Rendered conversation up to and including the assistant's partial answer."""
    partial: str
    """The trailing assistant message's content (empty when the request asks for a new turn)."""
    add_special_tokens: bool
    """Whether the tokenizer should add its own BOS (chat templates write theirs; the plain template does not)."""


def split_partial(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str]:
    """Separate a trailing assistant message (a prefix to continue) from the conversation before it."""
    if messages and messages[-1].get("role") == "assistant":
        return messages[:-1], content_text(messages[-1])
    return messages, ""


def content_text(message: dict[str, Any]) -> str:
    """A message's text; OpenAI's list-of-parts content keeps its text parts."""
    content = message.get("content")
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if isinstance(part, dict))


def render_plain(messages: list[dict[str, Any]], eos: str) -> str:
    """Messages in the plain template (no generation prompt): for tokenizers without a chat template."""
    blocks = []
    for message in messages:
        role, text = message.get("role", "user"), content_text(message)
        if role == "system":
            blocks.append(f"{text}\n\n")
        elif role == "assistant":
            blocks.append(f"{PLAIN_ROLE_HEADERS['assistant']}{text}{eos}\n\n")
        else:
            blocks.append(f"{PLAIN_ROLE_HEADERS['user']}{text}\n\n")
    return "".join(blocks)


def template_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages as a chat template accepts them: text content, and only the roles every template knows."""
    # Chat templates reject roles they do not know (tool, function, developer); keep their text as user turns.
    known = {"system", "user", "assistant"}
    return [{"role": m.get("role") if m.get("role") in known else "user", "content": content_text(m)} for m in messages]


def template_kind(tokenizer: Any, requested: TemplateKind = "model") -> TemplateKind:
    """`model` only when asked for and the tokenizer really has a chat template."""
    return "model" if requested == "model" and getattr(tokenizer, "chat_template", None) else "plain"


def render_prompt(tokenizer: Any, messages: list[dict[str, Any]], kind: TemplateKind) -> Prompt:
    """The text the model continues: the conversation, a generation prompt, then any partial assistant answer."""
    history, partial = split_partial(messages)
    if kind == "model":
        text = tokenizer.apply_chat_template(template_messages(history), tokenize=False, add_generation_prompt=True)
        return Prompt(text=str(text) + partial, partial=partial, add_special_tokens=False)
    eos = tokenizer.eos_token or ""
    text = render_plain(history, eos) + PLAIN_GENERATION_PROMPT + partial
    return Prompt(text=text, partial=partial, add_special_tokens=True)


def end_of_turn(tokenizer: Any, kind: TemplateKind) -> str:
    """The text a template writes right after an assistant answer (`<|im_end|>` for ChatML, EOS for plain)."""
    eos = str(tokenizer.eos_token or "")
    if kind == "plain":
        return eos
    rendered = str(
        tokenizer.apply_chat_template(
            [{"role": "user", "content": "x"}, {"role": "assistant", "content": _SENTINEL}], tokenize=False
        )
    )
    tail = rendered.split(_SENTINEL, 1)[-1].strip()
    return tail or eos


def encoder_text(messages: list[dict[str, Any]]) -> str:
    """An encoder classifies the user's text; system prompts and any assistant prefix are not part of the input."""
    return "\n".join(content_text(m) for m in messages if m.get("role") == "user")
