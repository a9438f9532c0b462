"""Compiled transformer layers for long training runs on the CPU (`torch.compile`, one layer at a time).

A training step's matrix multiplies already run at this CPU's roof; much of the rest is element-wise work that eager
PyTorch does one operator at a time, each a full pass over memory: RMS norms (Gemma 3 has six per layer), gated
activations, rotary embeddings, residual adds, dropout masks, autocast's casts. Inductor fuses a layer's element-wise
work into a few C++ loops around the same matrix-multiply kernels: LoRA steps 1.25x faster for SmolLM2 and 1.30x for
Gemma 3 in in-process A/Bs (BENCHMARKS.md, "Training speed", compiled layers); MiniLM's steps only 1.02x, so `auto`
leaves encoders eager.

Compiling is not free: 30-110 s at the start of a run with an empty cache on two cores, 10-20 s once inductor's
kernels are cached (on disk, in the model cache folder). So `auto` compiles only runs with enough training tokens
for the faster steps to repay a cold compile (`COMPILE_MIN_TOKENS`). Only training passes run the compiled
code: validation and inference (no gradients) run the layers as they are, so their shapes never trigger a
recompilation. A layer is compiled, not the whole model: the layers share one compiled graph, which compiles once
instead of once per layer, and the embedding and the loss stay eager.

Inductor needs a C++ compiler. Where there is none, or compiling a probe fails, training runs eager and says so.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import torch
from torch import nn

from localft.settings import CompilePolicy
from localft.training.auto import Family

log = logging.getLogger(__name__)

COMPILE_MIN_TOKENS: dict[Family, int | None] = {"causal_lm": 200_000, "encoder": None}
"""Training tokens (all epochs) from which `auto` compiles: about where the measured per-token gain repays a cold
compile (LLM runs on real-length batches: about 175,000 tokens for Gemma 3, 250,000 for SmolLM2; BENCHMARKS.md).
None: `auto` never compiles that family; MiniLM's steps were 1.02x faster compiled in an in-process A/B once freed
memory was kept, too little to repay a compile of about half a minute."""
CACHE_SUBDIR = "compiled"
"""Inductor's kernels are kept in this folder of the model cache."""
RECOMPILE_LIMIT = 64
"""Compiled variants per layer function. The layers share one graph per variant: with and without a gradient on the
input (the first layer's input has none under LoRA), eager or SDPA attention (by the pass's width), sliding-window or
global attention layers (Gemma 3), one row or several. torch's default of 8 would silently run eager beyond."""


def should_compile(policy: CompilePolicy, family: Family, planned_tokens: int, device: str) -> bool:
    """Whether a run compiles its layers: `on` and `off` as asked; `auto` on the CPU for runs of at least
    `COMPILE_MIN_TOKENS` training tokens. Never on other devices (measured on CPUs only)."""
    if policy == "off" or not device.startswith("cpu"):
        return False
    threshold = COMPILE_MIN_TOKENS[family]
    return policy == "on" or (threshold is not None and planned_tokens >= threshold)


def compile_layers(model: nn.Module, model_cache: Path | None = None) -> int:
    """Run the repeated layers of `model` compiled in training passes; returns how many layers were wrapped (0 where
    this machine cannot compile). Inductor's kernels are kept in `model_cache / CACHE_SUBDIR` across runs, unless
    the user chose a folder (`TORCHINDUCTOR_CACHE_DIR`)."""
    if model_cache is not None:
        from torch._inductor.runtime.cache_dir_utils import default_cache_dir

        # Inductor reads the variable at each lookup, and sets it to its default (in /tmp) on first use.
        if os.environ.get("TORCHINDUCTOR_CACHE_DIR") in (None, os.path.abspath(default_cache_dir())):
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(model_cache / CACHE_SUBDIR)
    if not compiler_works():
        return 0
    import torch._dynamo

    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, RECOMPILE_LIMIT)
    layers = repeated_layers(model)
    for layer in layers:
        layer.forward = _TrainingPasses(layer.forward)  # type: ignore[method-assign]
    return len(layers)


def repeated_layers(model: nn.Module) -> list[nn.Module]:
    """The longest list of same-class modules in a model: a decoder's or an encoder's layers."""
    best: list[nn.Module] = []
    for module in model.modules():
        if isinstance(module, nn.ModuleList) and len(module) > len(best):
            children = list(module)
            if len({type(child) for child in children}) == 1:
                best = children
    return best


class _TrainingPasses:
    """A layer's forward: the compiled one in training passes (gradients on), else the original."""

    def __init__(self, forward: Callable[..., Any]) -> None:
        self.eager = forward
        # Dynamo compiles functions and methods; `encoder_head.first_token_only` installs a callable object.
        function: Callable[..., Any] = forward if hasattr(forward, "__code__") else forward.__call__  # type: ignore[operator]
        self.compiled = torch.compile(function, dynamic=True)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if torch.is_grad_enabled():
            return self.compiled(*args, **kwargs)
        return self.eager(*args, **kwargs)


@cache
def compiler_works() -> bool:
    """Whether inductor can build and run a kernel here (a C++ compiler and headers), forward and backward."""
    try:
        probe = torch.compile(lambda x: torch.sin(x) * 2 + 1, dynamic=True)
        x = torch.randn(4, 8, requires_grad=True)
        probe(x).sum().backward()  # type: ignore[no-untyped-call]
        return x.grad is not None
    except Exception as exc:  # any failure means eager; the reason goes to the log
        log.warning("torch.compile does not work on this machine, training runs eager: %s", exc)
        return False
