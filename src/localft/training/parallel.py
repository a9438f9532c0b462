"""What the training loop asks of the processes it trains with: one process (`OneProcess`), or several training one
model data-parallel (`DataParallel`, over a `torch.distributed` process group: gloo on CPUs, NCCL on GPUs).

Data-parallel training here is DistributedDataParallel's arithmetic without its module wrapper: every process holds
the whole model, takes its share of each batch, and the gradients are summed across processes once per optimizer
step, in one flat buffer, before every process applies the same update. The wrapper's hooks reduce gradients during
the backward pass and expect every process to run the same number of passes; here a step's share runs in as many
passes as its lengths need (`base_models.grouping`), which differs between processes, and the learners call their
model's parts directly (`lora_causal` runs the body and the head apart).

Everything the loop decides is made the same in every process: each process knows the whole batch (the data order
is a function of the seed and the epoch), so the loss is normalised by the whole batch's targets and the summed
gradients are the one-process gradients, up to the order of the additions. Decisions that depend on one process's
clock or its sink (stop, save progress now) are agreed on (`any`); only the first process writes checkpoints and
reports. A checkpoint holds the whole model and optimizer, so a run resumes on any number of processes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, TypeVar

import torch

T = TypeVar("T")


class Collective(Protocol):
    """The loop's view of the processes training one model."""

    rank: int
    world_size: int

    @property
    def is_writer(self) -> bool:
        """Whether this process writes checkpoints and reports events (the first one)."""

    def share(self, batch: Sequence[T]) -> list[T]:
        """This process's part of a batch every process holds."""

    def sum_gradients(self, parameters: Sequence[torch.nn.Parameter]) -> None:
        """Replace every parameter's gradient by its sum over the processes."""

    def sum(self, *values: float) -> list[float]:
        """Each value summed over the processes."""

    def any(self, flag: bool) -> bool:
        """Whether any process's `flag` is set."""

    def same_start(self, parameters: Sequence[torch.nn.Parameter]) -> None:
        """Give every process the first process's values of `parameters`."""


class OneProcess:
    """Training in this process alone: every collective is the identity."""

    rank = 0
    world_size = 1

    @property
    def is_writer(self) -> bool:
        return True

    def share(self, batch: Sequence[T]) -> list[T]:
        return list(batch)

    def sum_gradients(self, parameters: Sequence[torch.nn.Parameter]) -> None:
        return None

    def sum(self, *values: float) -> list[float]:
        return list(values)

    def any(self, flag: bool) -> bool:
        return flag

    def same_start(self, parameters: Sequence[torch.nn.Parameter]) -> None:
        return None


class DataParallel:
    """Data-parallel training over the default `torch.distributed` process group (already initialised)."""

    def __init__(self, device: str) -> None:
        import torch.distributed as dist

        self._dist: Any = dist
        self.rank = dist.get_rank()
        self.world_size = dist.get_world_size()
        # NCCL reduces tensors on the GPU; gloo on the CPU.
        self._device = torch.device(device) if dist.get_backend() == "nccl" else torch.device("cpu")

    @property
    def is_writer(self) -> bool:
        return self.rank == 0

    def share(self, batch: Sequence[T]) -> list[T]:
        # Every world_size-th example: each process's share is as long and as varied in length as the others'.
        return list(batch[self.rank :: self.world_size])

    def sum_gradients(self, parameters: Sequence[torch.nn.Parameter]) -> None:
        grads = [p.grad for p in parameters]
        # Which parameters any process has a gradient for: a parameter no process touched keeps no gradient, as in
        # one process (AdamW leaves it alone), rather than a zero one that its moments and weight decay would see.
        present = torch.tensor([g is not None for g in grads], dtype=torch.float32, device=self._device)
        flat = torch.cat(
            [
                (g if g is not None else torch.zeros_like(p)).reshape(-1).to(self._device, torch.float32)
                for g, p in zip(grads, parameters, strict=True)
            ]
        )
        self._dist.all_reduce(present)
        self._dist.all_reduce(flat)
        start = 0
        for parameter, touched in zip(parameters, present.tolist(), strict=True):
            size = parameter.numel()
            if touched:
                parameter.grad = flat[start : start + size].view_as(parameter).to(parameter.device, parameter.dtype)
            start += size

    def sum(self, *values: float) -> list[float]:
        total = torch.tensor(values, dtype=torch.float64, device=self._device)
        self._dist.all_reduce(total)
        return [float(v) for v in total.tolist()]

    def any(self, flag: bool) -> bool:
        return self.sum(float(flag))[0] > 0

    def same_start(self, parameters: Sequence[torch.nn.Parameter]) -> None:
        if not parameters:
            return
        flat = torch.cat([p.detach().reshape(-1).to(self._device, torch.float32) for p in parameters])
        self._dist.broadcast(flat, src=0)
        start = 0
        with torch.no_grad():
            for parameter in parameters:
                size = parameter.numel()
                parameter.copy_(flat[start : start + size].view_as(parameter))
                start += size
