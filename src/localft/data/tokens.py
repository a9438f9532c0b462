"""Token counting for validation: a base model's own tokenizer when one is named, else a documented estimate.

An example's count follows OpenAI's data-prep notebook: each message costs its content's tokens plus
MESSAGE_OVERHEAD (the role and the chat template's markers), a `name` adds NAME_OVERHEAD, and the reply priming
adds REPLY_PRIMING. Without a tokenizer, a text costs APPROX_CHARS_PER_TOKEN characters per token (rounded up):
the usual rule of thumb for English with BPE vocabularies, good for budgets, not for exact context limits.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from localft.base_models.catalog import Family

TokenCounter = Callable[[str], int]
"""Tokens in one piece of text, without special tokens."""

MESSAGE_OVERHEAD = 3
NAME_OVERHEAD = 1
REPLY_PRIMING = 3
APPROX_CHARS_PER_TOKEN = 4
# Tokenizers without a known context report a huge sentinel as model_max_length; anything above this is ignored.
_NO_LIMIT_SENTINEL = 10_000_000


def approx_tokens(text: str) -> int:
    """Estimate: one token per APPROX_CHARS_PER_TOKEN characters, rounded up."""
    return -(-len(text) // APPROX_CHARS_PER_TOKEN)


def example_tokens(messages: Sequence[Mapping[str, Any]], count: TokenCounter) -> int:
    """Tokens of one chat example: contents plus per-message and reply overheads (see the module docstring)."""
    total = REPLY_PRIMING
    for message in messages:
        total += MESSAGE_OVERHEAD
        content = message.get("content")
        if isinstance(content, str):
            total += count(content)
        if isinstance(message.get("name"), str):
            total += NAME_OVERHEAD + count(message["name"])
    return total


@dataclass(frozen=True)
class ModelTokens:
    """A model's token counter, what it is called in reports, its context length when the tokenizer knows it, and
    its family (`causal_lm` or `encoder`; None for the estimate)."""

    count: TokenCounter
    name: str
    context: int | None
    family: Family | None = None


def tokenizer_counter(tokenizer: Any) -> TokenCounter:
    """Wrap a Hugging Face tokenizer as a TokenCounter."""

    def count(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=False))

    return count


def model_tokens(model: str) -> ModelTokens:
    """The tokenizer of a base model (built-in name, alias or local folder), loaded through `localft.base_models`.

    Raises localft.errors.ModelError for an unknown model.
    """
    # imported here: it pulls in transformers
    from localft.base_models import load_tokenizer, local_model_dir, model_family, model_positions, resolve_alias
    from localft.settings import Settings

    folder = local_model_dir(model, Settings.from_env().cache_dir)
    tokenizer = load_tokenizer(str(folder))
    limit = getattr(tokenizer, "model_max_length", None)
    # Tokenizers converted from GGUF files carry no limit (a huge sentinel instead): the config's positions then.
    context = limit if isinstance(limit, int) and 0 < limit < _NO_LIMIT_SENTINEL else model_positions(folder)
    return ModelTokens(
        count=tokenizer_counter(tokenizer),
        name=model,
        context=context,
        family=model_family(resolve_alias(model), folder),
    )


APPROXIMATE = ModelTokens(count=approx_tokens, name=f"approximate ({APPROX_CHARS_PER_TOKEN} chars/token)", context=None)
