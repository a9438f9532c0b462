"""Chat completions: resolve the model id (as the caller's project sees it), call the inference engine, answer in
OpenAI's shape."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from localft import ids
from localft.api.chat.protocol import (
    ChatCompletion,
    ChatCompletionRequest,
    ChatMessage,
    Choice,
    ChoiceLogprobs,
    TokenLogprob,
    TopLogprob,
    Usage,
)
from localft.base_models import not_installed
from localft.errors import InvalidRequestError, NotFoundError
from localft.inference.types import ChatRequest, ChatResult, ModelArtifact
from localft.inference.types import TokenLogprob as EngineTokenLogprob
from localft.jobs.registry import model_not_found, resolve_model
from localft.jobs.store import Store

_SEEDS = 2**63
"""OpenAI takes any 64-bit seed; numpy and torch take non-negative ones, onto which negative seeds are folded."""

if TYPE_CHECKING:
    from localft.inference.engine import InferenceEngine


class ChatService:
    def __init__(self, store: Store, home: Path, engine: Callable[[], InferenceEngine]) -> None:
        self.store = store
        self.home = home
        self.engine = engine
        """Built on first use, so a server that never chats never imports torch."""

    def create(self, request: ChatCompletionRequest, project: str | None) -> ChatCompletion:
        if request.stream:
            raise InvalidRequestError("Streaming is not supported; call without stream=True.", param="stream")
        if request.top_logprobs and not request.logprobs:
            raise InvalidRequestError("top_logprobs requires logprobs=true.", param="top_logprobs")
        if len(request.messages) == 1 and request.messages[0].role == "assistant":
            raise InvalidRequestError(
                "messages holds only an assistant message, which would be the start of the answer: add the "
                "conversation it answers (at least one user or system message) before it.",
                param="messages",
            )
        artifact = resolve_model(self.store, self.home, request.model, project)
        missing = not_installed(artifact.base_model)
        if missing is not None:
            raise InvalidRequestError(missing, param="model", code="model_not_installed")
        stop = [request.stop] if isinstance(request.stop, str) else list(request.stop or [])
        if len(stop) > 4:
            raise InvalidRequestError("stop holds at most 4 sequences.", param="stop")
        engine_request = ChatRequest(
            messages=[message.model_dump(exclude_none=True) for message in request.messages],
            temperature=1.0 if request.temperature is None else request.temperature,
            top_p=1.0 if request.top_p is None else request.top_p,
            n=request.n or 1,
            max_tokens=request.max_completion_tokens or request.max_tokens,
            stop=[sequence for sequence in stop if sequence],
            seed=None if request.seed is None else request.seed % _SEEDS,
            logprobs=bool(request.logprobs),
            top_logprobs=request.top_logprobs or 0,
            response_format=request.response_format,
            logit_bias=request.logit_bias,
        )
        try:
            result = self.engine().chat(artifact, engine_request)
        except Exception:
            # A fine-tuned model deleted while this request was in flight: its folder went from under the engine,
            # which fails in whatever way loading a missing folder fails. To the caller the model does not exist.
            if self._gone(artifact, project):
                raise model_not_found(request.model) from None
            raise
        return _completion(request.model, result)

    def _gone(self, artifact: ModelArtifact, project: str | None) -> bool:
        if artifact.checkpoint is None:
            return False
        try:
            resolve_model(self.store, self.home, artifact.model_id, project)
        except NotFoundError:
            return True
        return not artifact.checkpoint.is_dir()


def _completion(model: str, result: ChatResult) -> ChatCompletion:
    choices = [
        Choice(
            index=i,
            message=ChatMessage(content=choice.content),
            logprobs=None if choice.logprobs is None else ChoiceLogprobs(content=_logprobs(choice.logprobs)),
            finish_reason=choice.finish_reason,
            label_probs=choice.label_probs,
        )
        for i, choice in enumerate(result.choices)
    ]
    return ChatCompletion(
        id=ids.completion_id(),
        created=int(time.time()),
        model=model,
        choices=choices,
        usage=Usage(
            prompt_tokens=result.prompt_tokens,
            completion_tokens=result.completion_tokens,
            total_tokens=result.prompt_tokens + result.completion_tokens,
        ),
        system_fingerprint=result.system_fingerprint,
    )


def _logprobs(tokens: list[EngineTokenLogprob]) -> list[TokenLogprob]:
    return [
        TokenLogprob(
            token=t.token,
            logprob=t.logprob,
            bytes=list(t.token.encode()),
            top_logprobs=[
                TopLogprob(token=o.token, logprob=o.logprob, bytes=list(o.token.encode())) for o in t.top_logprobs
            ],
        )
        for t in tokens
    ]
