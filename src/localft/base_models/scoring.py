"""Scoring fixed answers instead of generating them: how a classifier stays inside its label set.

Shared by inference (a classifier's answer and its label probabilities) and training (epoch-end validation), so a
validation accuracy is measured the way the served model answers.

For a causal LM, each candidate answer's score is the sum of the log-probabilities of its tokens after the prompt.
Prompt and candidates run in one forward pass under a tree-shaped attention mask, so 77 labels cost one pass over
the prompt plus their own tokens, and a request reads the weights once (on a CPU, the label pass of the earlier
prompt-then-labels scheme cost nearly as much as the prompt pass: it halved the requests per second). Prompt and
answer are tokenized together (BPE merges across the boundary: `Outcome: cited` is not `Outcome:` + ` cited`) and
the tokens every candidate shares are treated as prompt. Encoders produce all label scores in one forward pass.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from localft.base_models.grouping import group_by_length
from localft.base_models.templates import Prompt

PASS_OVERHEAD = 80
"""A scoring pass's fixed cost in tokens (reading the weights once per pass): rows of a batch are grouped into
passes by length where the padding saved is worth more (`grouping`; measured in docs/studies/training-speed.md,
"Real-length batches")."""
ENCODER_PASS_OVERHEAD = 64
"""The same for an encoder's pass."""
MAX_LOGITS = 64 * 1024 * 1024
"""Logits computed per forward pass (positions x vocabulary, float32: 256 MB): bounds memory for large label sets.
Rows are split into several passes beyond it; a single row that exceeds it still runs alone."""


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
        return model(input_ids=ids, use_cache=True, logits_to_keep=1).cache


def score_rows(
    model: Any,
    rows: Sequence[ScoreRow],
    pad_id: int,
    device: str,
    prefix: tuple[int, Any] | None = None,
    budget: float = math.inf,
) -> list[list[float]]:
    """Summed log-probability of every candidate of every row, prompts and candidates in one forward pass.

    Each row's sequence is its prompt followed by its candidates as a prefix tree (a shared start runs once),
    under a tree-shaped attention mask: prompt tokens see the prompt before them, a candidate token sees the
    prompt and its own ancestors in the tree, never another branch. Position ids continue from the prompt along
    each branch, so every candidate is scored exactly as if it alone followed the prompt. A candidate's last token
    is never fed (nothing is predicted after it), so single-token candidates cost nothing beyond the prompt.

    With `prefix` = (length, cache from `prefix_cache`), every row's prompt starts with those tokens: only the rest
    of each prompt runs, attending to the cached prefix. Rows of unequal length run in passes grouped by length
    (`grouping`), each within `budget` padded tokens; the scores come back in the rows' order.
    """
    vocab = int(model.get_output_embeddings().out_features)
    skip = prefix[0] if prefix is not None else 0
    tries = [_trie(row) for row in rows]
    lengths = [len(row.prompt_ids) - skip + len(trie) for row, trie in zip(rows, tries, strict=True)]
    passes: list[list[int]] = []  # row indices: grouped by length, then split where the logits outgrow memory
    for group in group_by_length(range(len(rows)), lengths, budget, PASS_OVERHEAD):
        passes.append([])
        width = 0  # logits kept per row in the pass: the prompt's last position + the widest tree
        for i in group:
            if passes[-1] and (len(passes[-1]) + 1) * max(width, 1 + len(tries[i])) * vocab > MAX_LOGITS:
                passes.append([])
                width = 0
            passes[-1].append(i)
            width = max(width, 1 + len(tries[i]))
    scores: list[list[float]] = [[] for _ in rows]
    for members in passes:
        out = _score_batch(model, [(rows[i], tries[i]) for i in members], pad_id, device, prefix)
        for i, row_scores in zip(members, out, strict=True):
            scores[i] = row_scores
    return scores


def _trie(row: ScoreRow) -> dict[tuple[int, ...], int]:
    """The candidates' fed tokens as a prefix tree: each distinct token prefix -> its node index, in feed order.

    Candidates that start alike (`card_arrival`, `card_linking`) share the nodes of their common start, so those
    tokens run once per prompt instead of once per candidate."""
    nodes: dict[tuple[int, ...], int] = {}
    for candidate in row.candidates:
        for depth in range(1, len(candidate)):  # a candidate's last token is never fed
            nodes.setdefault(tuple(candidate[:depth]), len(nodes))
    return nodes


def fed_count(row: ScoreRow) -> int:
    """Candidate tokens a row feeds: the nodes of its prefix tree."""
    return len(_trie(row))


def _score_batch(
    model: Any,
    batch: Sequence[tuple[ScoreRow, dict[tuple[int, ...], int]]],
    pad_id: int,
    device: str,
    prefix: tuple[int, Any] | None,
) -> list[list[float]]:
    import torch

    rows = [row for row, _ in batch]
    tries = [trie for _, trie in batch]
    skip, prefix_kv = prefix if prefix is not None else (0, None)
    rests = [row.prompt_ids[skip:] for row in rows]
    prompt_width = max(len(rest) for rest in rests)  # prompts are left-padded to end in the same column
    length = prompt_width + max(len(trie) for trie in tries)
    ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
    positions = torch.zeros((len(rows), length), dtype=torch.long)
    allowed = torch.zeros((len(rows), length, skip + length), dtype=torch.bool)
    allowed[:, :, :skip] = True
    for i, (rest, trie) in enumerate(zip(rests, tries, strict=True)):
        begin = prompt_width - len(rest)
        ids[i, begin:prompt_width] = torch.tensor(rest)
        positions[i, begin:prompt_width] = skip + torch.arange(len(rest))
        allowed[i, begin:prompt_width, skip + begin : skip + prompt_width] = _causal(len(rest))
        for path, node in trie.items():
            column = prompt_width + node
            ids[i, column] = path[-1]
            positions[i, column] = skip + len(rest) + len(path) - 1
            allowed[i, column, skip + begin : skip + prompt_width] = True
            for depth in range(1, len(path) + 1):  # the node's ancestors and itself
                allowed[i, column, skip + prompt_width + trie[path[:depth]]] = True
        padding = [c for c in range(length) if not begin <= c < prompt_width + len(trie)]
        allowed[i, padding, [skip + c for c in padding]] = True  # padding sees itself: no all-masked softmax row
    dtype = next(p for p in model.parameters() if p.is_floating_point()).dtype  # the attention's dtype
    mask = torch.zeros(allowed.shape, dtype=dtype).masked_fill(~allowed, torch.finfo(dtype).min)
    kept = torch.arange(prompt_width - 1, length)  # the prompt's last position predicts every first token
    with torch.inference_mode():
        cache = None
        if prefix_kv is not None:
            cache = copy.deepcopy(prefix_kv)
            cache.reorder_cache(torch.zeros(len(rows), dtype=torch.long, device=device))
        out = model(
            input_ids=ids.to(device),
            attention_mask=mask[:, None].to(device),
            position_ids=positions.to(device),
            cache=cache,
            use_cache=cache is not None,
            logits_to_keep=kept.to(device),
        )
        logprobs = torch.log_softmax(out.logits.float(), dim=-1).cpu()
    result = []
    for i, row in enumerate(rows):
        row_scores = []
        for candidate in row.candidates:
            # Kept index 0 is the prompt's last position, which predicts every first token; the node of a
            # candidate's first j tokens (kept index 1 + node) predicts its token j.
            at = [0] + [1 + tries[i][tuple(candidate[:j])] for j in range(1, len(candidate))]
            row_scores.append(float(logprobs[i, at, candidate].sum()))
        result.append(row_scores)
    return result


def _causal(n: int) -> Any:
    import torch

    return torch.ones((n, n), dtype=torch.bool).tril()


def encoder_logits(model: Any, ids: Sequence[Sequence[int]], device: str, pad_id: int) -> Any:
    """Classification-head logits for a batch of tokenized texts (float32, on the CPU)."""
    return _encoder_passes(model, ids, pad_id, device, lambda out, mask: out.logits.float())


def encoder_embeddings(model: Any, ids: Sequence[Sequence[int]], device: str, pad_id: int) -> Any:
    """Mean-pooled, L2-normalised sentence embeddings of a base encoder (for zero-shot choices among values)."""
    import torch

    def pooled(out: Any, mask: Any) -> Any:
        hidden = out.last_hidden_state.float()
        weights = mask.to(hidden.device).unsqueeze(-1).float()
        mean = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        return torch.nn.functional.normalize(mean, dim=-1)

    return _encoder_passes(model, ids, pad_id, device, pooled)


def _encoder_passes(
    model: Any, ids: Sequence[Sequence[int]], pad_id: int, device: str, output: Callable[[Any, Any], Any]
) -> Any:
    """`output(model_output, attention_mask)` for every text's token ids, stacked in their order; the texts run
    in passes grouped by length."""
    import torch

    results: list[Any] = [None] * len(ids)
    for group in group_by_length(range(len(ids)), [len(i) for i in ids], overhead=ENCODER_PASS_OVERHEAD):
        width = max(len(ids[i]) for i in group)
        batch = torch.full((len(group), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(group), width), dtype=torch.long)
        for r, i in enumerate(group):
            batch[r, : len(ids[i])] = torch.tensor(ids[i])
            mask[r, : len(ids[i])] = 1
        with torch.inference_mode():
            out = output(model(input_ids=batch.to(device), attention_mask=mask.to(device)), mask)
        for r, i in enumerate(group):
            results[i] = out[r].cpu()
    return torch.stack(results)
