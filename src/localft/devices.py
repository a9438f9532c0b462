"""Which device training and inference run on, whether it is really there, and how it is described.

`LOCALFT_DEVICE=auto` takes the best device this torch can use: CUDA, else Apple's `mps`, else the CPU. A device
named explicitly is checked before anything loads a model, so a wrong setting fails at once with the fix in the
message (not with torch's `AssertionError: Torch not compiled with CUDA enabled` at the first tensor moved). The
description (`describe`) is what `/health`, `/version`, `localft serve`'s first line and the jobs' events show.
"""

from __future__ import annotations

import platform
import re
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from localft.errors import LocalftError

_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
CUDA_TORCH_HINT = (
    "install a CUDA build of torch (`make clean setup TORCH_INDEX=https://download.pytorch.org/whl/cu128`, README "
    "'GPUs and clusters'), or set LOCALFT_DEVICE=auto to use what this machine has"
)


class DeviceError(LocalftError):
    """A device was asked for that this machine or this build of torch does not have."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="device_unavailable")


def resolve_device(device: str = "auto") -> str:
    """The device to run on: `auto` is CUDA where torch sees a GPU, else `mps` (Apple silicon), else `cpu`; a named
    device (`cpu`, `cuda`, `cuda:1`, `mps`) is returned as it is once checked (`DeviceError` where it is missing)."""
    asked = device.strip().lower()
    if not _DEVICE.match(asked):
        raise DeviceError(f"LOCALFT_DEVICE={device!r} is not a device: use auto, cpu, cuda, cuda:N or mps.")
    import torch

    if asked == "auto":
        if torch.cuda.is_available():
            return "cuda"
        return "mps" if _mps_available() else "cpu"
    if asked.startswith("cuda"):
        if not torch.cuda.is_available():
            built = f"torch {torch.__version__}"
            why = (
                f"{built} was built without CUDA"
                if torch.version.cuda is None
                else f"{built} (CUDA {torch.version.cuda}) sees no GPU: no driver, or CUDA_VISIBLE_DEVICES hides them"
            )
            raise DeviceError(f"LOCALFT_DEVICE={device} asks for a GPU, but {why}: {CUDA_TORCH_HINT}.")
        index = int(asked.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise DeviceError(
                f"LOCALFT_DEVICE={device} asks for GPU {index}, but torch sees {torch.cuda.device_count()} "
                f"(cuda:0 to cuda:{torch.cuda.device_count() - 1})."
            )
    if asked == "mps" and not _mps_available():
        raise DeviceError(f"LOCALFT_DEVICE={device} asks for Apple's mps, which this machine or torch does not have.")
    return asked


def _mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def device_type(device: str) -> str:
    """`cuda:1` -> `cuda`: what `torch.autocast` and the allocator's statistics take."""
    return device.partition(":")[0]


def gpu_count() -> int:
    """CUDA devices torch sees (0 on a CPU build)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def for_rank(device: str, local_rank: int) -> str:
    """The device of one data-parallel process: on GPUs, its own (`cuda:<local rank>`); CPUs are shared."""
    if device_type(device) == "cuda":
        return f"cuda:{local_rank}"
    return device


@cache
def native_bf16(device: str) -> bool:
    """Whether `device` multiplies bf16 natively: GPUs that support it, CPUs with AVX512-BF16 or AMX. Elsewhere
    bf16 is emulated and slower than fp32, so training skips autocast and inference keeps fp32 weights. Apple's
    `mps` keeps fp32 (its bf16 kernels were never measured here)."""
    if device.startswith("cuda"):
        import torch

        return bool(torch.cuda.is_bf16_supported())
    if device.startswith("mps"):
        return False
    cpuinfo = Path("/proc/cpuinfo")
    flags = cpuinfo.read_text() if cpuinfo.is_file() else ""
    return "avx512_bf16" in flags or "amx_bf16" in flags


def precision(device: str) -> str:
    """How training and inference compute on `device`: `bf16` (bf16 autocast, bf16 weights at inference) or
    `fp32`."""
    return "bf16" if native_bf16(device) else "fp32"


def use_fast_matmul(device: str) -> None:
    """On GPUs, let fp32 matrix multiplies outside autocast (a head, an optimizer's norms) use TF32 tensor cores:
    fp32's range with a 10-bit mantissa, the precision bf16 autocast already gives the rest."""
    if device_type(device) == "cuda":
        import torch

        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def to_device(tensor: Any, device: str) -> Any:
    """A CPU tensor moved to `device`; to a GPU from pinned memory without blocking, so the copy overlaps the work
    already queued (a pageable copy makes the CPU wait for it)."""
    if device_type(device) != "cuda":
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)


def free_memory(device: str) -> int | None:
    """Bytes free on a GPU now (what the driver reports, other processes' use included); None elsewhere."""
    if device_type(device) != "cuda":
        return None
    import torch

    free, _total = torch.cuda.mem_get_info(torch.device(device))
    return int(free)


@dataclass(frozen=True)
class DeviceReport:
    """What a process computes on, as `/health`, `/version`, the serve banner and job events show it."""

    device: str
    """The resolved device (`cpu`, `cuda`, `cuda:1`, `mps`)."""
    precision: str
    """`bf16` or `fp32` (`precision`)."""
    name: str
    """The GPU's name, or the CPU's model."""
    torch: str
    cuda: str | None
    """The CUDA version torch was built with (None on a CPU build)."""
    gpus: list[str] = field(default_factory=list)
    """Every GPU torch sees, by name."""
    memory_gib: float | None = None
    """The device's memory (GPUs only)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """One line: `cuda (NVIDIA H100 80GB HBM3, 79.1 GiB), bf16` or `cpu (AMD EPYC 9R14), bf16`."""
        memory = f", {self.memory_gib:.1f} GiB" if self.memory_gib is not None else ""
        more = f", 1 of {len(self.gpus)} GPUs" if len(self.gpus) > 1 else ""
        return f"{self.device} ({self.name}{memory}{more}), {self.precision}"


def describe(device: str) -> DeviceReport:
    """The report of the device `device` resolves to (raises `DeviceError` like `resolve_device`)."""
    import torch

    resolved = resolve_device(device)
    gpus = [torch.cuda.get_device_name(i) for i in range(gpu_count())]
    name, memory = _cpu_name(), None
    if device_type(resolved) == "cuda":
        index = torch.device(resolved).index or 0
        properties = torch.cuda.get_device_properties(index)
        name, memory = properties.name, round(properties.total_memory / 2**30, 1)
    elif resolved == "mps":
        name = f"Apple {platform.machine()}"
    return DeviceReport(
        device=resolved,
        precision=precision(resolved),
        name=name,
        torch=torch.__version__,
        cuda=torch.version.cuda,
        gpus=gpus,
        memory_gib=memory,
    )


@cache
def _cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    return platform.processor() or platform.machine() or "CPU"
