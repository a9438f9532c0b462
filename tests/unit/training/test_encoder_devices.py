"""An encoder's validation when its model runs on a GPU, simulated on the CPU.

No GPU here, so `SimulatedGpu` stands in for CUDA's rule: a tensor made or moved `cuda` is marked, and any operation
that mixes a marked tensor with an unmarked one of one or more dimensions raises the error CUDA raises. Multi-label
validation compared GPU logits with CPU thresholds and labels, which raised at the first epoch end on a real GPU; the
GPU tier (tests/gpu) runs the same job on CUDA itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.overrides import TorchFunctionMode
from torch.utils import _pytree as pytree

from localft.training.dataset import ChatExample
from localft.training.encoder_head import EncoderItem, EncoderLearner
from localft.training.run import _load_tokenizer
from localft.training.task import detect_task

from .conftest import chat

torch.set_num_threads(1)


class _OnGpu(torch.Tensor):
    """A CPU tensor standing for one on a GPU (`SimulatedGpu` gives it CUDA's device rules)."""

    __torch_function__ = torch._C._disabled_torch_function_impl


def _is_cuda(device: object) -> bool:
    return isinstance(device, str | torch.device) and str(device).startswith("cuda")


class SimulatedGpu(TorchFunctionMode):
    """CUDA's device rules on marked CPU tensors: see the module docstring."""

    def __torch_function__(
        self, func: Callable[..., Any], types: Sequence[type], args: Sequence[Any] = (), kwargs: Any = None
    ) -> Any:
        kwargs = dict(kwargs or {})
        inputs = [t for t in pytree.tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
        marked = any(isinstance(t, _OnGpu) for t in inputs)
        if func is torch.Tensor.cpu:
            return func(*args, **kwargs).as_subclass(torch.Tensor)
        if func is torch.Tensor.to:
            target = kwargs.pop("device", None)
            rest = list(args[1:])
            if rest and isinstance(rest[0], str | torch.device):
                target = rest.pop(0)
            out = func(args[0], *rest, **kwargs)  # the move itself stays on the CPU
            if target is None:  # a change of dtype only: the tensor stays where it is
                return _same_place(out, marked)
            return out.as_subclass(_OnGpu if _is_cuda(target) else torch.Tensor)
        if _is_cuda(kwargs.get("device")):
            kwargs["device"] = "cpu"
            return _same_place(func(*args, **kwargs), True)
        if marked and any(not isinstance(t, _OnGpu) and t.dim() > 0 for t in inputs):
            raise RuntimeError(
                f"{getattr(func, '__name__', func)}: Expected all tensors to be on the same device, but found at "
                "least two devices, cuda:0 and cpu!"
            )
        return _same_place(func(*args, **kwargs), marked)


def _same_place(out: Any, marked: bool) -> Any:
    if not marked:
        return out
    return pytree.tree_map_only(torch.Tensor, lambda t: t.as_subclass(_OnGpu), out)


def test_the_simulation_raises_where_cuda_would() -> None:
    with SimulatedGpu():
        on_gpu = torch.tensor([0.2, 0.9], device="cuda")
        assert isinstance(on_gpu, _OnGpu) and isinstance(on_gpu * 2, _OnGpu)
        assert (on_gpu > 0.5).tolist() == [False, True]  # Python scalars are fine on a GPU
        with pytest.raises(RuntimeError, match="same device"):
            _ = on_gpu > torch.tensor([0.5, 0.5])
        assert not isinstance(on_gpu.cpu() > torch.tensor([0.5, 0.5]), _OnGpu)


def test_multi_label_validation_of_a_model_on_a_gpu(tiny_encoder: Path) -> None:
    rows = [
        ("my bag was lost again", "lost,bag"),
        ("the flight was great thanks", "none"),
        ("a question about the gate", "gate"),
        ("the bag at the gate", "bag,gate"),
    ] * 3
    examples = [ChatExample(chat(text, answer)["messages"], line) for line, (text, answer) in enumerate(rows, 1)]
    task = detect_task([ex.answer for ex in examples])
    assert task.multi_label
    learner = EncoderLearner(tiny_encoder, _load_tokenizer(tiny_encoder), task, "cpu", 64)
    items = learner.make_items(examples)
    on_cpu = learner._logits

    def on_gpu(part: Sequence[EncoderItem]) -> torch.Tensor:
        learner.device = "cpu"  # the tiny model itself stays on the CPU; its logits are handed over as a GPU's
        try:
            return on_cpu(part).as_subclass(_OnGpu)
        finally:
            learner.device = "cuda"

    learner._logits = on_gpu  # type: ignore[method-assign]
    learner.device = "cuda"
    with SimulatedGpu():
        evaluation = learner.evaluate(items, classify=True)
        again = learner.evaluate(items, classify=False)  # with the thresholds just tuned
    assert set(evaluation.classification) == {"exact_match", "micro_f1", "macro_f1"}
    assert len(learner.thresholds) == 3 and again.token_accuracy == evaluation.token_accuracy
