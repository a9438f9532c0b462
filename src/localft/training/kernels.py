"""Faster CPU kernels for training passes: which attention a pass runs, and dropout with a cheaper random source.

Two costs showed in profiles of training steps on a 2-core CPU (docs/studies/training-speed.md):
- PyTorch's fused SDPA attention has a slow backward pass on CPU at short lengths: a SmolLM2 step of 8 x 128 tokens
  spent 18% of its time there. The textbook ("eager") attention, two batched matrix multiplies and a softmax, is
  faster up to about 256 tokens and slower beyond (its score matrix grows with the square of the length), so each
  pass picks by its width.
- `torch.nn.functional.dropout` draws one random number per element: dropout took 20% of a MiniLM step (117 ms). A
  mask cut from 16-bit slices of 64-bit random words took 48 ms and drops each element with the same probability
  (to 1/65536).

The eager attention is our own (`fast_eager_attention`): besides the fast dropout, it serves grouped-query attention
without copying keys and values per query head and keeps the scores in bf16 under autocast, which made LoRA steps
1.02-1.04x faster than transformers' eager attention. All of these are substitutes, not approximations: the same
function of the weights up to float rounding, and for dropout the same distribution of masks, drawn from torch's
seeded generator, so a seeded run stays reproducible. All were measured on CPUs only; a model on a GPU keeps its own
attention and dropout.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

import torch
from torch import nn

EAGER_MAX_WIDTH = 256
"""Passes up to this many tokens wide run eager attention, wider ones the model's default (SDPA). Measured on
SmolLM2 LoRA steps (docs/studies/training-speed.md): transformers' eager attention was 1.17x faster than SDPA at 128
tokens, 1.1-1.4x
at 256, even at 384, 0.6x at 512. Ours is faster still (1.13x SDPA at 256, 1.23x at 512), but its score matrices grow
with the square of the width: three passes of 8 x 512 peaked at 8.3-8.7 GB against 5.1 GB with SDPA, too much for a
laptop, so wider passes keep SDPA."""
COMPILED_EAGER_MAX_WIDTH = 512
"""The same for training passes through compiled layers (`training.compilation`). Compiled, transformers' eager
attention (what the LLMs ran before ours) was the faster at every width measured (docs/studies/training-speed.md):
SmolLM2 1.25x SDPA
at 128 tokens, 1.27x at 512; Gemma 3 1.13x and 1.24x; compiled at 128 tokens, ours ran 1.01x faster than it. And one
attention for every width of a default run (512 tokens at most) means one compiled graph instead of one per
attention and mask kind. The price is memory: the score matrices grow with the width (with transformers' eager
attention, a pass of 8 x 512 tokens peaked at 5.4 GB for SmolLM2 against 3.1 GB with SDPA; a real-length run at 2.8
against 2.5 GB eager)."""
FAST_EAGER = "localft_eager"
"""The name our eager attention (`fast_eager_attention`) is registered under in transformers."""
_MASK_STEPS = 1 << 16


@torch.library.custom_op("localft::random_int16", mutates_args=(), tags=torch.Tag.nondeterministic_seeded)
def random_int16(like: torch.Tensor) -> torch.Tensor:
    """Uniform random int16 values shaped like `like`: 16-bit slices of 64-bit words from torch's generator.

    An operator of its own so that compiled layers (`training.compilation`) call it as it is between their fused
    loops (dynamo cannot trace the in-place draw, and would split the layer there); tagged as random, so compiler
    passes treat no two draws as one and do not recompute a draw for the backward pass (unit test: the compiled
    backward uses the forward's mask)."""
    words = torch.empty((like.numel() + 3) // 4, dtype=torch.int64, device=like.device)
    words.random_(-(1 << 63), None)  # every bit random (the default range leaves the sign bit 0)
    return words.view(torch.int16)[: like.numel()].view(like.shape)


@random_int16.register_fake
def _random_int16_shape(like: torch.Tensor) -> torch.Tensor:
    return torch.empty(like.shape, dtype=torch.int16, device=like.device)


def keep_mask(like: torch.Tensor, p: float) -> torch.Tensor:
    """A dropout multiplier shaped and typed like `like`: 0 with probability `p`, else 1 / (1 - p)."""
    draws = random_int16(like)
    dropped_below = round(p * _MASK_STEPS) - _MASK_STEPS // 2  # int16 draws are uniform on [-32768, 32767]
    scale = torch.tensor(1.0 / (1.0 - p), dtype=like.dtype, device=like.device)
    return torch.where(draws >= dropped_below, scale, torch.zeros((), dtype=like.dtype, device=like.device))


class _Dropout(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, p: float) -> torch.Tensor:
        mask = keep_mask(x, p)
        ctx.save_for_backward(mask)
        return x * mask

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (mask,) = ctx.saved_tensors
        return grad * mask, None


def fast_dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """`torch.nn.functional.dropout` with the cheaper mask."""
    if not training or p <= 0.0:
        return x
    if p >= 1.0:
        return torch.zeros_like(x)
    out: torch.Tensor = _Dropout.apply(x, p)  # type: ignore[no-untyped-call]
    return out


class FastDropout(nn.Dropout):
    """A drop-in `nn.Dropout` (same `p`, same behaviour in train and eval) drawing its mask with `keep_mask`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fast_dropout(x, self.p, self.training)


def _on_cpu(model: nn.Module) -> bool:
    return next(model.parameters()).device.type == "cpu"


def use_fast_dropout(model: nn.Module) -> int:
    """Replace every `nn.Dropout` in a model on the CPU with `FastDropout`; returns how many were replaced."""
    if not _on_cpu(model):
        return 0
    swapped = 0
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if type(child) is nn.Dropout:
                setattr(module, name, FastDropout(child.p, child.inplace))
                swapped += 1
    return swapped


def fast_eager_attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    softcap: float | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Textbook attention over (batch, heads, length, head_dim) tensors with an additive mask, as transformers' eager
    attention computes it, with the fast dropout on the attention weights and fewer copies.

    Grouped-query attention (a key/value head serving several query heads: SmolLM2 3 for 9, Gemma 3 1 for 4) stacks
    each group's queries along the length, so one matrix multiply serves the group, where transformers repeats the
    keys and values once per query head (a copy forward and a sum backward, each). The scale applies to the queries
    before the multiply rather than to the scores after it: a tensor `head_dim / key length` times smaller. The mask
    joins the scores in their precision (bf16 under autocast), and so does the softmax."""
    batch, heads, length, head_dim = query.shape
    kv_heads, kv_length = key.shape[1], key.shape[2]
    groups = heads // kv_heads
    scale = scaling if scaling is not None else head_dim**-0.5
    stacked = (query * scale).reshape(batch, kv_heads, groups * length, head_dim)
    scores = torch.matmul(stacked, key.transpose(2, 3)).view(batch, kv_heads, groups, length, kv_length)
    if softcap is not None:  # Gemma 2 caps the scores (Gemma 3 does not)
        scores = torch.tanh(scores / softcap) * softcap
    if attention_mask is not None:
        # Clamped first: fp32's lowest value is -inf in bf16, and a row with no key to attend to (padding in a
        # sliding-window layer) would turn into NaN, which the next layer's multiplies spread to every position.
        mask = attention_mask[:, :, :, :kv_length].clamp(min=torch.finfo(scores.dtype).min).to(scores.dtype)
        mask = mask[:, :, None] if mask.shape[1] == 1 else mask.view(mask.shape[0], kv_heads, groups, length, kv_length)
        scores = scores + mask
    # In the scores' own precision: for bf16 the CPU kernel sums in fp32 and gives the probabilities transformers
    # gets by upcasting first (checked equal), without an fp32 copy of the scores and a cast back, each way.
    weights = torch.softmax(scores, dim=-1)
    weights = fast_dropout(weights, dropout, module.training)
    out = torch.matmul(weights.view(batch, kv_heads, groups * length, kv_length), value)
    return out.view(batch, heads, length, head_dim).transpose(1, 2).contiguous(), weights.view(
        batch, heads, length, kv_length
    )


@cache
def _register() -> None:
    """Make `FAST_EAGER` a name transformers knows (on first use: importing transformers takes seconds)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, eager_mask

    AttentionInterface.register(FAST_EAGER, fast_eager_attention)
    AttentionMaskInterface.register(FAST_EAGER, eager_mask)


@contextmanager
def attention_for_width(model: Any, width: int, compiled: bool = False) -> Iterator[None]:
    """Within the block, a model on the CPU runs our eager attention (`FAST_EAGER`) if a pass of `width` tokens is
    short enough for it to be faster, else its own default; `compiled`: the model's layers are compiled, so training
    passes (with gradients) go through them. Models that cannot switch (no `AttentionInterface` support) keep their
    own."""
    default = model.config._attn_implementation
    limit = COMPILED_EAGER_MAX_WIDTH if compiled and torch.is_grad_enabled() else EAGER_MAX_WIDTH
    wanted = FAST_EAGER if width <= limit and _on_cpu(model) else default
    if getattr(model, "is_activation_checkpointing", False):
        wanted = default  # layers that recompute in the backward pass, after this block, must attend the same way
    if wanted == default or not model._can_set_attn_implementation():
        yield
        return
    _register()
    model.set_attn_implementation(wanted)
    try:
        yield
    finally:
        model.set_attn_implementation(default)
