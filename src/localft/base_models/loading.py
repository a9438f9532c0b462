"""Loading tokenizers and choosing a device; model classes are loaded by the engines that know their family."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from localft.base_models.fetch import local_model_dir


def resolve_device(device: str = "auto") -> str:
    """`auto` means CUDA when present, else CPU; anything else is passed through (`cpu`, `cuda:1`)."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@cache
def native_bf16(device: str) -> bool:
    """Whether `device` multiplies bf16 natively: GPUs that support it, CPUs with AVX512-BF16 or AMX. Elsewhere
    bf16 is emulated and slower than fp32, so training skips autocast and inference keeps fp32 weights."""
    if device.startswith("cuda"):
        import torch

        return bool(torch.cuda.is_bf16_supported())
    cpuinfo = Path("/proc/cpuinfo")
    flags = cpuinfo.read_text() if cpuinfo.is_file() else ""
    return "avx512_bf16" in flags or "amx_bf16" in flags


def use_threads(threads: int) -> None:
    """Set torch's intra-op thread count for this process; 0 keeps torch's default (one per physical core)."""
    if threads <= 0:
        return
    import torch

    torch.set_num_threads(threads)


def load_tokenizer(name: str, cache_dir: Path | None = None) -> Any:
    """The tokenizer of a base model (built-in name, alias or local folder)."""
    from transformers import AutoTokenizer

    from localft.settings import Settings

    folder = local_model_dir(name, cache_dir or Settings.from_env().cache_dir)
    return AutoTokenizer.from_pretrained(folder)
