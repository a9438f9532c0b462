"""How a training run uses a GPU's memory: how many tokens each forward pass takes, and whether the layers recompute
their activations in the backward pass (gradient checkpointing) to fit.

On the CPU a run keeps the per-family budgets measured there (`auto.TOKENS_PER_FORWARD`): a pass's cost grows with
its tokens, and wider passes only cost memory. A GPU runs a wide pass in about the time of a narrow one, so there the
budget is what fits in the memory left once the model is loaded: the batch then runs in as few passes as it can (one,
for a default batch of a small model), the rest of the batch accumulating gradients as on the CPU. Where not even
one example of `max_length` tokens would fit, the layers keep only their inputs and recompute the rest in the backward
pass: about a third more compute for a fraction of the memory.

The activation sizes below are estimates from the model's shape (bf16 activations under autocast, attention through
PyTorch's SDPA kernels, which keep no score matrix), with a margin; the GPU check (`scripts/gpu-check`) prints the
peak memory each run really reached.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ACTIVATION_BYTES_PER_HIDDEN = 2 * 14
"""Bytes a layer keeps per token for each unit of its hidden size: about 14 bf16 tensors of the hidden width
(norm inputs and outputs, queries, keys, values, attention output, residuals)."""
ACTIVATION_BYTES_PER_INTERMEDIATE = 2 * 4
"""The same for the feed-forward block's width (gate, up, activation, product)."""
MARGIN = 1.5
"""Estimated activations are multiplied by this before they are fitted (allocator fragmentation, temporaries)."""
USABLE_FRACTION = 0.8
"""Of the memory free after loading the model, the share a run plans to fill (the rest: CUDA's workspace, the
validation passes, other processes that start later)."""
OPTIMIZER_BYTES_PER_TRAINED_PARAMETER = 4 + 8
"""An fp32 gradient and AdamW's two fp32 moments, allocated at the first step."""
MAX_TOKENS_PER_FORWARD = 1 << 17
"""The widest pass planned, however much memory is free: past this a pass is already long enough to keep any GPU
busy."""


@dataclass(frozen=True)
class MemoryPlan:
    """How a run's passes fit the device."""

    tokens_per_forward: int
    """Padded tokens per forward pass before a batch is split into micro-batches."""
    checkpointing: bool
    """Whether the layers recompute their activations in the backward pass."""
    free_bytes: int | None = None
    """What the GPU had free when the plan was made (None on a CPU)."""

    def describe(self) -> str:
        """The job event's words for it (GPUs only)."""
        free = f"{self.free_bytes / 2**30:.1f} GiB free after loading the model: " if self.free_bytes else ""
        recompute = "gradient checkpointing on (not even one example fitted otherwise)" if self.checkpointing else ""
        return f"{free}up to {self.tokens_per_forward} tokens per forward pass" + (
            f", {recompute}" if recompute else ""
        )


def activation_bytes_per_token(config: Any, checkpointing: bool) -> int:
    """What a training pass keeps in memory per token of input until its backward pass, for a model of `config`'s
    shape: every layer's activations, or with `checkpointing` every layer's input and one layer's activations."""
    text = getattr(config, "text_config", None) or config  # multimodal configs keep the language model's apart
    hidden = int(getattr(text, "hidden_size", 0) or getattr(text, "d_model", 0) or 768)
    intermediate = int(getattr(text, "intermediate_size", 0) or 4 * hidden)
    layers = int(getattr(text, "num_hidden_layers", 0) or getattr(text, "num_layers", 0) or 12)
    layer = ACTIVATION_BYTES_PER_HIDDEN * hidden + ACTIVATION_BYTES_PER_INTERMEDIATE * intermediate
    if checkpointing:
        return int(MARGIN * (layers * 4 * hidden + layer))
    return int(MARGIN * layers * layer)


def plan_memory(
    config: Any, free_bytes: int | None, trained_parameters: int, max_length: int, cpu_tokens_per_forward: int
) -> MemoryPlan:
    """The plan for a model of `config`'s shape with `free_bytes` left on its GPU (None: a CPU, which keeps
    `cpu_tokens_per_forward`), `trained_parameters` to update, and examples of up to `max_length` tokens."""
    if free_bytes is None:
        return MemoryPlan(cpu_tokens_per_forward, checkpointing=False)
    usable = free_bytes * USABLE_FRACTION - trained_parameters * OPTIMIZER_BYTES_PER_TRAINED_PARAMETER
    for checkpointing in (False, True):
        tokens = int(usable // activation_bytes_per_token(config, checkpointing))
        if tokens >= max_length:
            return MemoryPlan(min(tokens, MAX_TOKENS_PER_FORWARD), checkpointing, free_bytes)
    # Not even one example fits by the estimate: one per pass, recomputing, and the allocator has the last word.
    return MemoryPlan(max_length, checkpointing=True, free_bytes=free_bytes)


def use_gradient_checkpointing(model: Any) -> None:
    """Make the transformer layers of `model` (a Hugging Face model, or a peft model around one) recompute their
    activations in the backward pass instead of keeping them."""
    for module in model.modules():
        if hasattr(module, "activation_checkpointing_enable") and getattr(
            module, "supports_gradient_checkpointing", False
        ):
            module.activation_checkpointing_enable()
            if hasattr(module, "config"):
                module.config.use_cache = False  # a KV cache is of no use in training, and checkpointing refuses it
            return
    raise ValueError(f"{type(model).__name__} has no transformer layers that can recompute their activations")
