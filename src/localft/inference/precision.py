"""How inference holds weights: the float dtype, and which model families run their linear layers in int8.

On a CPU without native bf16 (AVX2 only, as on the machines here), fp32 matmuls run at the core's FMA roof and
bf16 is emulated (slower). Dynamic int8 quantization (int8 weights per output channel, activations quantized per
call) multiplies with integer instructions instead: measured 2.3x faster for MiniLM here. Whether the answers
survive it depends on the model: BERT-style encoders keep their decisions, SmolLM2's MLP activations have
outliers that per-tensor activation scales flatten (docs/studies/inference-speed.md). Hence the policy:

- `auto` (default): int8 for encoders on a CPU without native bf16, where it is the fast path; with native bf16,
  bf16 weights were nearly as fast and changed no answer, so they stay; causal LMs stay in float;
- `on`: int8 for both families on the CPU (faster, at a measured cost in answer quality for small LLMs);
- `off`: float only.

Training never sees any of this: it loads its own float copy of the base model.

Quantization keeps every module's type, so peft can still wrap a quantized base with LoRA adapters: each large
`nn.Linear` keeps its shape attributes, its forward runs the int8 kernel, and its float weight is replaced by a
one-element placeholder of the right shape (expanded, so nothing is allocated) that peft reads only for device and
dtype. Several adapters keep sharing one quantized base.
"""

from __future__ import annotations

import warnings
from functools import cache
from typing import Any

from localft.base_models import native_bf16
from localft.settings import Int8Policy

CLASSIFIER_HEADS = frozenset({"classifier", "score"})
"""Sequence-classification heads (Hugging Face's names) stay in float: they cost nothing and carry the decision."""


def compute_dtype(device: str) -> Any:
    """Weights are held in bf16 where supported: measured here, autocast over fp32 weights was 3x slower than
    fp32 (it re-casts every weight on every call), bf16 weights 1.3-1.5x faster. Training's autocast multiplies
    in bf16 too, so the answers match what validation saw within rounding."""
    import torch

    return torch.bfloat16 if native_bf16(device) else torch.float32


def int8_applies(policy: Int8Policy, family: str, device: str) -> bool:
    """Whether a model of `family` is quantized under `policy` on `device` (int8 kernels exist on the CPU only)."""
    if policy == "off" or not device.startswith("cpu") or not int8_available():
        return False
    return policy == "on" or (family == "encoder" and not native_bf16(device))


@cache
def int8_available() -> bool:
    """The dynamic int8 linear kernel (fbgemm on x86, qnnpack on ARM) is built into this torch."""
    import torch

    return bool(torch.backends.quantized.supported_engines) and any(
        engine in ("fbgemm", "x86", "qnnpack") for engine in torch.backends.quantized.supported_engines
    )


def quantize_linears(model: Any) -> int:
    """Run every `nn.Linear` of `model` but its classification head in dynamic int8, in place.

    Returns how many layers were converted."""
    from torch import nn

    # torch marks the eager quantization API deprecated in favour of torchao; it is still the kernel that ships
    # with the pinned torch, and the warnings would otherwise repeat for every layer.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torch.ao.nn.quantized.dynamic import Linear as DynamicInt8Linear
        from torch.ao.quantization import per_channel_dynamic_qconfig

        converted = 0
        for name, module in list(model.named_modules()):
            if type(module) is nn.Linear and not CLASSIFIER_HEADS.intersection(name.split(".")):
                _run_in_int8(module, DynamicInt8Linear, per_channel_dynamic_qconfig)
                converted += 1
    return converted


def _run_in_int8(layer: Any, int8_class: Any, qconfig: Any) -> None:
    import torch
    from torch import nn

    layer.qconfig = qconfig
    int8 = int8_class.from_float(layer)
    del layer.qconfig
    layer.forward = int8.forward  # the int8 module stays alive through its bound method
    layer.int8_bytes = layer.weight.numel() + 8 * layer.out_features  # int8 weights, then a scale and zero point
    placeholder = torch.zeros((), dtype=layer.weight.dtype, device=layer.weight.device)
    layer.weight = nn.Parameter(placeholder.expand(layer.out_features, layer.in_features), requires_grad=False)


def runs_in_int8(layer: Any) -> bool:
    """Whether `quantize_linears` converted this layer (its `weight` is then a placeholder)."""
    return hasattr(layer, "int8_bytes")


def held_bytes(model: Any) -> int:
    """Memory the model's weights really take: each storage once (tied weights, placeholders) plus int8 layers."""
    seen: set[int] = set()
    total = 0
    for tensor in [*model.parameters(), *model.buffers()]:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in seen:
            seen.add(storage.data_ptr())
            total += storage.nbytes()
    return total + sum(int(getattr(m, "int8_bytes", 0)) for m in model.modules())
