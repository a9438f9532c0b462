"""Free generation for base models and generative fine-tunes: temperature, top_p, n, max_tokens, stop, seed.

`temperature=0` is greedy (deterministic). A `seed` makes sampling repeatable without touching the process-wide
random state. Log-probabilities are the model's own (before temperature), as OpenAI reports them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from localft.base_models.templates import Prompt
from localft.errors import InvalidRequestError
from localft.inference.types import ChatRequest, FinishReason, TokenLogprob, TopLogprob

DEFAULT_MAX_TOKENS = 256
"""Completion length when the request sets none (OpenAI's is the context; on a CPU that could take minutes)."""


@dataclass(frozen=True)
class Generated:
    text: str
    finish_reason: FinishReason
    tokens: int
    logprobs: list[TokenLogprob] | None = None


def _cut_at_stop(text: str, stops: list[str]) -> tuple[str, bool]:
    hits = [text.index(s) for s in stops if s and s in text]
    return (text[: min(hits)], True) if hits else (text, False)


def generate(
    model: Any,
    tokenizer: Any,
    encode: Callable[..., Any],
    prompt: Prompt,
    request: ChatRequest,
    terminator: str,
    device: str,
) -> tuple[list[Generated], int]:
    """`request.n` completions of `prompt`, and the prompt's token count; `encode` is the locked tokenizer call."""
    import torch

    _check_limits(model, request)
    encoded = encode(prompt.text, add_special_tokens=prompt.add_special_tokens, return_tensors="pt")
    input_ids = encoded["input_ids"].to(device)
    stop_ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    if terminator:
        stop_ids.update(encode(terminator, add_special_tokens=False)["input_ids"][:1])
    sample = request.temperature > 0
    options: dict[str, Any] = {
        "max_new_tokens": request.max_tokens or DEFAULT_MAX_TOKENS,
        "do_sample": sample,
        "num_return_sequences": request.n,
        "eos_token_id": sorted(stop_ids) or None,
        "pad_token_id": tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(stop_ids, default=0),
        "return_dict_in_generate": True,
        "output_logits": request.logprobs,
    }
    if sample:
        options.update(temperature=request.temperature, top_p=request.top_p, top_k=0)
    else:  # the model's generation_config may carry sampling defaults; greedy must ignore them
        options.update(temperature=None, top_p=None, top_k=None)
    if request.stop:
        options.update(stop_strings=request.stop, tokenizer=tokenizer)
    if request.logit_bias:
        options["sequence_bias"] = {(int(token),): float(bias) for token, bias in request.logit_bias.items()}
    with torch.random.fork_rng(devices=[device] if device.startswith("cuda") else []):
        if request.seed is not None:
            torch.manual_seed(request.seed)
        with torch.inference_mode():
            out = model.generate(input_ids=input_ids, attention_mask=encoded["attention_mask"].to(device), **options)
    new_tokens = out.sequences[:, input_ids.shape[1] :].cpu()
    results = [
        _one(tokenizer, new_tokens[i], out.logits, i, stop_ids, request, options["max_new_tokens"])
        for i in range(new_tokens.shape[0])
    ]
    return results, int(input_ids.shape[1])


def _check_limits(model: Any, request: ChatRequest) -> None:
    """The 400s OpenAI sends for what a model cannot do: more new tokens than its context holds, a bias on a token
    its vocabulary does not have."""
    context = getattr(model.config, "max_position_embeddings", None)
    if request.max_tokens is not None and context and request.max_tokens > context:
        raise InvalidRequestError(
            f"max_tokens is too large: {request.max_tokens}. This model supports at most {context} completion tokens.",
            param="max_tokens",
        )
    vocabulary = model.get_input_embeddings().num_embeddings
    unknown = [token for token in request.logit_bias or {} if int(token) >= vocabulary]
    if unknown:
        raise InvalidRequestError(
            f"logit_bias names token {unknown[0]}, which is not in this model's vocabulary of {vocabulary} tokens.",
            param="logit_bias",
        )


def _one(
    tokenizer: Any,
    tokens: Any,
    step_logits: Any,
    row: int,
    stop_ids: set[int],
    request: ChatRequest,
    max_new_tokens: int,
) -> Generated:
    import torch

    ids = [int(t) for t in tokens]
    ended = next((i for i, t in enumerate(ids) if t in stop_ids), None)
    kept = ids if ended is None else ids[:ended]
    text, stopped = _cut_at_stop(tokenizer.decode(kept, skip_special_tokens=True), request.stop)
    finish: FinishReason = "length" if ended is None and not stopped and len(ids) >= max_new_tokens else "stop"
    logprobs = None
    if request.logprobs and step_logits is not None:
        logprobs = []
        for step, token in enumerate(kept):
            dist = torch.log_softmax(step_logits[step][row].float(), dim=-1)
            top = torch.topk(dist, k=request.top_logprobs) if request.top_logprobs else None
            alternatives = (
                [TopLogprob(tokenizer.decode([int(t)]), float(v)) for v, t in zip(top.values, top.indices, strict=True)]
                if top is not None
                else []
            )
            logprobs.append(TokenLogprob(tokenizer.decode([token]), float(dist[token]), alternatives))
    used = len(ids) if ended is None else ended + 1
    return Generated(text=text, finish_reason=finish, tokens=used, logprobs=logprobs)
