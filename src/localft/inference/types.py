"""Requests to and answers from the inference engine, free of HTTP: the chat route converts to and from these."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal


@dataclass(frozen=True)
class ModelArtifact:
    """What to load for a model id: a base model (catalog name or HF folder) and optionally a fine-tune on it."""

    model_id: str
    """The id the caller used (shown back in responses)."""
    base_model: str
    """Catalog name (`smollm2-135m-instruct`) or a local Hugging Face folder."""
    checkpoint: Path | None = None
    """A self-describing checkpoint folder (training/checkpoint.py); None for a base model."""


@dataclass(frozen=True)
class ChatRequest:
    messages: list[dict[str, Any]]
    temperature: float = 1.0
    top_p: float = 1.0
    n: int = 1
    max_tokens: int | None = None
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    logprobs: bool = False
    top_logprobs: int = 0
    response_format: dict[str, Any] | None = None
    logit_bias: dict[str, float] | None = None


@dataclass(frozen=True)
class TopLogprob:
    token: str
    logprob: float


@dataclass(frozen=True)
class TokenLogprob:
    token: str
    logprob: float
    top_logprobs: list[TopLogprob] = field(default_factory=list)


FinishReason = Literal["stop", "length"]


@dataclass(frozen=True)
class ChatChoice:
    content: str
    finish_reason: FinishReason
    logprobs: list[TokenLogprob] | None = None
    label_probs: dict[str, float] | None = None
    """For classifiers: the probability of every label (sums to 1 single-label; per label for multi-label)."""


@dataclass(frozen=True)
class ChatResult:
    choices: list[ChatChoice]
    prompt_tokens: int
    completion_tokens: int
    system_fingerprint: str
