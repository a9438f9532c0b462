"""Inference-only prompt pieces: the prompt prefix requests share (for the prefix cache), and the answer text still
to write after a caller's partial assistant message. Rendering itself is `localft.base_models.templates`, shared
with training.
"""

from __future__ import annotations

from typing import Any

from localft.base_models.templates import TemplateKind, render_plain, split_partial, template_messages

SENTINEL = "\x00localft-user-text\x00"
"""Stands in for the last user message's text while finding where that text starts in the rendered prompt."""


def shared_prefix_text(tokenizer: Any, messages: list[dict[str, Any]], kind: TemplateKind) -> str:
    """The start of the prompt that requests with the same instructions repeat: everything before the text of the
    last user turn (a default system prompt the template adds, the caller's system prompt and few-shot turns, and
    the last turn's own header). Empty when the template cannot render it or changes the text it is given.

    The header counts: `<|im_start|>user\n` is 3 of the 30-odd tokens of an SST-2 request after SmolLM2's system
    prompt, computed once instead of in every request (docs/studies/inference-speed.md)."""
    history, _ = split_partial(messages)
    last_user = max((i for i, m in enumerate(history) if m.get("role") == "user"), default=-1)
    if last_user < 0:
        return ""
    head = [*history[:last_user], {"role": "user", "content": SENTINEL}]
    if kind == "plain":
        rendered = render_plain(head, str(tokenizer.eos_token or ""))
    else:
        try:
            rendered = str(tokenizer.apply_chat_template(template_messages(head), tokenize=False))
        except Exception:  # a template that refuses these turns shares nothing
            return ""
    return rendered[: rendered.index(SENTINEL)] if SENTINEL in rendered else ""


def continuation(prefix: str, body: str, partial: str) -> str:
    """The part of the answer `prefix + body` still to write after the caller's `partial` assistant text.

    `Case Outcome: cited` after `Case Outcome:` is ` cited`; when the partial text is not a prefix of the answer
    (a prefix the model was not trained with), the bare `body` follows it, separated by a space when needed.
    """
    answer = prefix + body
    if not partial:
        return answer
    if answer.startswith(partial):
        return answer[len(partial) :]
    stripped = partial.rstrip()
    if stripped and answer.startswith(stripped) and not answer[len(stripped) :].startswith(partial[len(stripped) :]):
        # The caller ended with whitespace the trained answer does not have there; keep the answer's own text.
        return answer[len(stripped) :].lstrip()
    return body.lstrip() if partial[-1:].isspace() else " " + body.lstrip()
