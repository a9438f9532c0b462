"""Scoring fixed answers instead of generating them: how a classifier stays inside its label set.

For a causal LM, each candidate answer's score is the sum of the log-probabilities of its tokens after the prompt
(the same quantity training's validation uses). The prompt runs once per request; its KV cache is then shared by
every candidate, so 77 labels cost one prompt pass plus one small batched pass over the label tokens. Prompt and
answer are tokenized together (BPE merges across the boundary: `Outcome: cited` is not `Outcome:` + ` cited`) and
the tokens every candidate shares are treated as prompt. Encoders produce all label scores in one forward pass.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from localft.base_models.templates import Prompt

MAX_CANDIDATE_ROWS = 64
"""Candidate rows per pass: bounds the logits tensor (rows x tokens x vocabulary) for large label sets."""


@dataclass(frozen=True)
class ScoreRow:
    """One prompt and the token ids of each candidate answer that may follow it."""

    prompt_ids: list[int]
    candidates: list[list[int]]
    prompt_tokens: int
    """Tokens of the rendered prompt on its own (usage accounting)."""
    shared_prefix: int = 0
    """Leading prompt tokens that other requests share (system prompt, template header): cached between requests."""


def build_row(tokenize: Callable[..., Any], prompt: Prompt, answers: Sequence[str], shared_text: str = "") -> ScoreRow:
    """Tokenize `prompt + answer` for every answer and split off the tokens all of them share.

    `shared_text`, a start of the prompt that other requests repeat, becomes `shared_prefix` when it tokenizes to
    a strict prefix of the prompt's tokens.
    """
    texts = [prompt.text + answer for answer in answers]
    encoded = tokenize(texts, add_special_tokens=prompt.add_special_tokens)["input_ids"]
    alone = tokenize(prompt.text, add_special_tokens=prompt.add_special_tokens)["input_ids"]
    shared = min(len(alone), *(len(ids) - 1 for ids in encoded))
    first = encoded[0]
    for ids in encoded[1:]:
        shared = min(shared, next((i for i, (a, b) in enumerate(zip(first, ids, strict=False)) if a != b), shared))
    shared = max(shared, 1)
    prefix_len = 0
    if shared_text and prompt.text.startswith(shared_text):
        prefix_ids = tokenize(shared_text, add_special_tokens=prompt.add_special_tokens)["input_ids"]
        if len(prefix_ids) < shared and list(first[: len(prefix_ids)]) == list(prefix_ids):
            prefix_len = len(prefix_ids)
    return ScoreRow(
        prompt_ids=list(first[:shared]),
        candidates=[list(ids[shared:]) for ids in encoded],
        prompt_tokens=len(alone),
        shared_prefix=prefix_len,
    )


def prefix_cache(model: Any, prefix_ids: Sequence[int], device: str) -> Any:
    """The KV cache of a prompt prefix many requests share (system prompt and template header), computed once."""
    import torch

    with torch.inference_mode():
        ids = torch.tensor([list(prefix_ids)], device=device)
        return model(input_ids=ids, use_cache=True, logits_to_keep=1).past_key_values


def score_rows(
    model: Any, rows: Sequence[ScoreRow], pad_id: int, device: str, prefix: tuple[int, Any] | None = None
) -> list[list[float]]:
    """Summed log-probability of every candidate of every row, in one prompt pass and few candidate passes.

    With `prefix` = (length, cache from `prefix_cache`), every row's prompt starts with those tokens: only the rest
    of each prompt runs, after the cached prefix (padding sits between prefix and rest, masked out).
    """
    import torch

    skip, prefix_kv = prefix if prefix is not None else (0, None)
    lengths = torch.tensor([len(r.prompt_ids) for r in rows])
    width = int(lengths.max()) - skip
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), skip + width), dtype=torch.long)
    mask[:, :skip] = 1
    for i, row in enumerate(rows):  # left padding: every prompt ends at the last column
        rest = row.prompt_ids[skip:]
        ids[i, width - len(rest) :] = torch.tensor(rest)
        mask[i, skip + width - len(rest) :] = 1
    positions = ((mask.cumsum(-1) - 1).clamp(min=0))[:, skip:]
    flat = [(i, cand) for i, row in enumerate(rows) for cand in row.candidates]
    scores: list[float] = []
    with torch.inference_mode():
        cache = None
        if prefix_kv is not None:
            cache = copy.deepcopy(prefix_kv)
            cache.reorder_cache(torch.zeros(len(rows), dtype=torch.long, device=device))
        out = model(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            position_ids=positions.to(device),
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        first_logprobs = torch.log_softmax(out.logits[:, -1].float(), dim=-1)
        cache = out.past_key_values
        chunks = [flat[s : s + MAX_CANDIDATE_ROWS] for s in range(0, len(flat), MAX_CANDIDATE_ROWS)]
        for chunk in chunks:
            chunk_cache = copy.deepcopy(cache) if len(chunks) > 1 else cache
            scores.extend(_score_chunk(model, chunk, chunk_cache, first_logprobs, mask, lengths, pad_id, device))
    result: list[list[float]] = []
    for row in rows:
        result.append(scores[: len(row.candidates)])
        scores = scores[len(row.candidates) :]
    return result


def _score_chunk(
    model: Any,
    chunk: list[tuple[int, list[int]]],
    cache: Any,
    first_logprobs: Any,
    prompt_mask: Any,
    prompt_lengths: Any,
    pad_id: int,
    device: str,
) -> list[float]:
    import torch

    owners = torch.tensor([i for i, _ in chunk])
    width = max(len(c) for _, c in chunk)
    ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(chunk), width), dtype=torch.long)
    for r, (_, cand) in enumerate(chunk):
        ids[r, : len(cand)] = torch.tensor(cand)
        mask[r, : len(cand)] = 1
    first = first_logprobs[owners.to(first_logprobs.device), ids[:, 0].to(first_logprobs.device)].cpu()
    if width == 1:
        return [float(x) for x in first]
    cache.reorder_cache(owners.to(device))
    out = model(
        input_ids=ids.to(device),
        attention_mask=torch.cat([prompt_mask[owners], mask], dim=1).to(device),
        position_ids=(prompt_lengths[owners, None] + torch.arange(width)).to(device),
        past_key_values=cache,
        use_cache=True,
    )
    # Position j predicts token j+1; the first token was predicted by the prompt's last position.
    logprobs = torch.log_softmax(out.logits[:, :-1].float(), dim=-1).cpu()
    following = logprobs.gather(-1, ids[:, 1:, None]).squeeze(-1) * mask[:, 1:]
    return [float(x) for x in first + following.sum(-1)]


def encoder_logits(model: Any, tokenize: Callable[..., Any], texts: Sequence[str], max_length: int, device: str) -> Any:
    """Classification-head logits for a batch of texts (float32, on the CPU)."""
    import torch

    batch = tokenize(list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    with torch.inference_mode():
        logits = model(**{k: v.to(device) for k, v in batch.items()}).logits
    return logits.float().cpu()


def encoder_embeddings(
    model: Any, tokenize: Callable[..., Any], texts: Sequence[str], max_length: int, device: str
) -> Any:
    """Mean-pooled, L2-normalised sentence embeddings of a base encoder (for zero-shot choices among values)."""
    import torch

    batch = tokenize(list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**{k: v.to(device) for k, v in batch.items()}).last_hidden_state.float()
    weights = batch["attention_mask"].to(hidden.device).unsqueeze(-1).float()
    pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)
    return torch.nn.functional.normalize(pooled, dim=-1).cpu()
