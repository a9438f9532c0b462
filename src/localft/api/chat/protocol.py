"""Wire models of `/v1/chat/completions`, named as in OpenAI's `ChatCompletion`."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from localft.api.protocol import Name


def _unicode_text(value: str) -> str:
    """JSON may carry a lone surrogate (`"\\ud800"`), which no tokenizer can encode: refuse it here."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"not valid Unicode text (a lone surrogate at character {exc.start})") from None
    return value


Text = Annotated[str, AfterValidator(_unicode_text)]

TokenId = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,9}$")]
"""A `logit_bias` key: a token id, written as a string as JSON object keys are."""
Bias = Annotated[float, Field(ge=-100, le=100)]


class ContentPart(BaseModel):
    """One part of a list-of-parts `content`; the text parts are what the models read."""

    model_config = ConfigDict(extra="allow")

    type: str
    text: Text | None = None


class MessageIn(BaseModel):
    """A message as OpenAI's SDK sends it; fields other than these (`tool_calls`, ...) are kept and ignored."""

    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: Text | list[ContentPart] | None = None
    name: Text | None = None


class ChatCompletionRequest(BaseModel):
    """OpenAI's request fields that change the answer; others the SDK may send (`user`, `store`, ...) are ignored."""

    model_config = ConfigDict(extra="allow")

    model: Name
    messages: list[MessageIn] = Field(min_length=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    n: int | None = Field(default=None, ge=1, le=16)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    stop: Text | list[Text] | None = None
    seed: int | None = Field(default=None, ge=-(2**63), le=2**63 - 1, description="OpenAI's range: a 64-bit integer.")
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    response_format: dict[str, Any] | None = None
    logit_bias: dict[TokenId, Bias] | None = Field(
        default=None, description="Token id -> bias from -100 to 100, as OpenAI takes it; free generation only."
    )
    stream: bool | None = None


class TopLogprob(BaseModel):
    token: str
    logprob: float
    bytes: list[int] | None = None


class TokenLogprob(BaseModel):
    token: str
    logprob: float
    bytes: list[int] | None = None
    top_logprobs: list[TopLogprob] = Field(default_factory=list)


class ChoiceLogprobs(BaseModel):
    content: list[TokenLogprob] | None
    refusal: list[TokenLogprob] | None = None


class ChatMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str
    refusal: str | None = None


class Choice(BaseModel):
    index: int
    message: ChatMessage
    logprobs: ChoiceLogprobs | None = None
    finish_reason: Literal["stop", "length"]
    label_probs: dict[str, float] | None = Field(
        default=None, description="localft extra: the probability of every label, for classifier models."
    )


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    system_fingerprint: str
