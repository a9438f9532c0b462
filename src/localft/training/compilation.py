"""Compiled transformer layers for long training runs (`torch.compile`, one layer at a time), on the CPU by default.

A training step's matrix multiplies already run at this CPU's roof; much of the rest is element-wise work that eager
PyTorch does one operator at a time, each a full pass over memory: RMS norms (Gemma 3 has six per layer), gated
activations, rotary embeddings, residual adds, dropout masks, autocast's casts. Inductor fuses a layer's element-wise
work into a few C++ loops around the same matrix-multiply kernels: LoRA steps 1.25x faster for SmolLM2 and 1.30x for
Gemma 3 in in-process A/Bs (docs/studies/training-speed.md, compiled layers); MiniLM's steps only 1.02x, so `auto`
leaves encoders eager.

Compiling is not free: about half a minute at the start of a run with an empty cache on two cores, a few seconds
once inductor's kernels are cached (on disk, in the model cache folder). So `auto` compiles only runs with enough
training tokens for the faster steps to repay a cold compile (`COMPILE_MIN_TOKENS`), or a warm one where an earlier
run compiled the same base model (`COMPILE_MIN_TOKENS_CACHED`, `compiled_before`). One graph serves every training
pass of a default run: the number of rows is compiled as a size not known in advance, and compiled passes run one
attention at every width (`kernels.COMPILED_EAGER_MAX_WIDTH`); with a graph per kind of pass (five in a real-length
run), a cold compile made a SmolLM2 run 87 s longer than eager instead of 25 s. Only training passes run the
compiled code: validation and inference (no gradients) run the layers as they are, so their shapes never trigger a
recompilation. A layer is compiled, not the whole model: the layers share one compiled graph, which compiles once
instead of once per layer, and the embedding and the loss stay eager.

Inductor needs a C++ compiler (Triton on a GPU). Where there is none, or compiling a probe fails, training runs eager
and says so. `LOCALFT_COMPILE=on` compiles on a GPU too; `auto` does not, as nothing was measured there.
"""

from __future__ import annotations

import hashlib
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

COMPILE_MIN_TOKENS: dict[Family, int | None] = {"causal_lm": 100_000, "encoder": None}
"""Training tokens (all epochs) from which `auto` compiles: above where the measured per-token gain repays a cold
compile. Whole runs on real-length batches (docs/studies/training-speed.md, "One compiled graph"): compiled steps saved
0.41 ms per
token (SmolLM2) and 0.47 (Gemma 3), a cold compile cost about 34 and 39 s, so both break even near 84,000 tokens.
(The earlier compiles of a graph per kind of pass cost twice as much on one machine of this kind as on another; one
graph has been measured on one machine only.) None: `auto` never compiles that family; MiniLM's steps were 1.02x
faster compiled in an in-process A/B, too little to repay a compile of about half a minute."""
COMPILE_MIN_TOKENS_CACHED: dict[Family, int | None] = {"causal_lm": 25_000, "encoder": None}
"""The same where an earlier run compiled this base model into the same kernel cache (`compiled_before`): a warm
compile cost about 7 s in the same runs, a break-even near 14,000 (Gemma 3) and 17,000 tokens (SmolLM2); a SmolLM2
run of 21,638 tokens took as long compiled as eager."""
CACHE_SUBDIR = "compiled"
"""Inductor's kernels are kept in this folder of the model cache."""
RECOMPILE_LIMIT = 64
"""Compiled variants per layer function. The layers share one graph per variant; a default LLM run needs one (any
number of rows, eager attention at every width up to 512 tokens), but a longer maximum length adds SDPA passes with
and without a padding mask, and another model's code may branch on more. torch's default of 8 would silently run
eager beyond."""


def should_compile(
    policy: CompilePolicy, family: Family, planned_tokens: int, device: str, cached: bool = False
) -> bool:
    """Whether a run compiles its layers: `on` and `off` as asked, on any device; `auto` on the CPU for runs of at
    least `COMPILE_MIN_TOKENS` training tokens (`COMPILE_MIN_TOKENS_CACHED` where the kernels are `cached`), and not
    on other devices, where the gain and the compile time were never measured."""
    if policy != "auto":
        return policy == "on"
    threshold = (COMPILE_MIN_TOKENS_CACHED if cached else COMPILE_MIN_TOKENS)[family]
    return device.startswith("cpu") and threshold is not None and planned_tokens >= threshold


def kernel_cache(model_cache: Path) -> Path:
    """Where inductor keeps its kernels: the user's `TORCHINDUCTOR_CACHE_DIR`, else `model_cache / CACHE_SUBDIR`."""
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    chosen = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    # Inductor sets the variable to its default (in /tmp) on first use: that is no user's choice.
    if chosen in (None, os.path.abspath(default_cache_dir())):
        return model_cache / CACHE_SUBDIR
    return Path(chosen)  # type: ignore[arg-type]


def _marker(model_cache: Path, base_model: str) -> Path:
    key = hashlib.sha256(f"{base_model}\n{torch.__version__}".encode()).hexdigest()[:16]
    return kernel_cache(model_cache) / "localft-runs" / f"{Path(base_model).name}-{key}"


def compiled_before(model_cache: Path, base_model: str) -> bool:
    """Whether a run of `base_model` compiled its layers into this kernel cache before (with this torch)."""
    return _marker(model_cache, base_model).exists()


def remember_compiled(model_cache: Path, base_model: str) -> None:
    """Record that a run of `base_model` compiled its layers: its kernels are now in the cache."""
    marker = _marker(model_cache, base_model)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()


def compile_layers(model: nn.Module, model_cache: Path | None = None) -> int:
    """Run the repeated layers of `model` compiled in training passes; returns how many layers were wrapped (0 where
    this machine cannot compile). Inductor's kernels are kept in `kernel_cache(model_cache)` across runs."""
    if model_cache is not None:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(kernel_cache(model_cache))  # inductor reads it at each lookup
    if not compiler_works(next(model.parameters()).device.type):
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
    """A layer's forward: the compiled one in training passes (gradients on) whose input carries a gradient, else
    the original."""

    def __init__(self, forward: Callable[..., Any]) -> None:
        self.eager = forward
        self.compiled = torch.compile(forward, dynamic=True)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        hidden = args[0] if args else kwargs.get("hidden_states")
        # Under LoRA the first layer's input has no gradient (the embedding is frozen). Compiled, such an input is a
        # graph of its own (5 of the 11 of a real-length SmolLM2 run when each kind of batch had its own graph), a
        # compile for one layer of many, so that layer runs eager.
        if torch.is_grad_enabled() and (not isinstance(hidden, torch.Tensor) or hidden.requires_grad):
            if isinstance(hidden, torch.Tensor):
                _any_number_of_rows(hidden, args[1] if len(args) > 1 else kwargs.get("attention_mask"))
            return self.compiled(*args, **kwargs)
        return self.eager(*args, **kwargs)


def _any_number_of_rows(hidden: torch.Tensor, mask: Any) -> None:
    """Compile a pass's number of rows as a size not known in advance (unbacked), for the hidden states and the
    attention mask alike (decoder layers take the mask by name, encoder layers second).

    Otherwise dynamo specializes a dimension of size 1 (a one-row pass: the longest examples) and compiles it as a
    graph of its own, and again for every other kind of pass. With one attention for every width
    (`kernels.COMPILED_EAGER_MAX_WIDTH`) and this, a real-length SmolLM2 run compiles one graph where it compiled
    five, and a Gemma 3 run one as well (docs/studies/training-speed.md)."""
    from torch._dynamo.decorators import mark_unbacked

    mark_unbacked(hidden, 0, shape_id="rows")
    # Only a mask with a row per row: one that broadcasts a single row must keep its size 1.
    if isinstance(mask, torch.Tensor) and mask.dim() > 1 and mask.shape[0] == hidden.shape[0]:
        mark_unbacked(mask, 0, shape_id="rows")


@cache
def compiler_works(device: str = "cpu") -> bool:
    """Whether inductor can build and run a kernel for `device` here (a C++ compiler and headers on the CPU, Triton
    on a GPU), forward and backward."""
    try:
        probe = torch.compile(lambda x: torch.sin(x) * 2 + 1, dynamic=True)
        x = torch.randn(4, 8, device=device, requires_grad=True)
        probe(x).sum().backward()  # type: ignore[no-untyped-call]
        return x.grad is not None
    except Exception as exc:  # any failure means eager; the reason goes to the log
        log.warning("torch.compile does not work on this machine, training runs eager: %s", exc)
        return False
