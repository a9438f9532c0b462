"""Fitting a run to a GPU's memory: tokens per pass and gradient checkpointing (planned from numbers, so it runs on
the CPU), and checkpointed layers giving the same loss and gradients as kept activations."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

import localft.training.kernels as kernels
import localft.training.run as run_module
from localft.training import Hyperparameters, TrainSpec, run_training
from localft.training.auto import TOKENS_PER_FORWARD
from localft.training.dataset import ChatEncoder, ChatExample
from localft.training.encoder_head import EncoderLearner
from localft.training.lora_causal import CausalLearner
from localft.training.memory import (
    MAX_TOKENS_PER_FORWARD,
    activation_bytes_per_token,
    plan_memory,
    use_gradient_checkpointing,
)
from localft.training.run import _load_tokenizer
from localft.training.task import detect_task

from .conftest import SENTIMENT, ListSink, chat

torch.set_num_threads(1)
GiB = 2**30
QWEN_1_5B = SimpleNamespace(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28)  # Qwen2.5-1.5B's shape


def test_the_cpu_keeps_its_measured_budget() -> None:
    plan = plan_memory(QWEN_1_5B, None, 10**6, 512, TOKENS_PER_FORWARD["causal_lm"])
    assert (plan.tokens_per_forward, plan.checkpointing) == (TOKENS_PER_FORWARD["causal_lm"], False)


def test_a_big_gpu_takes_wide_passes_and_keeps_activations() -> None:
    plan = plan_memory(QWEN_1_5B, 70 * GiB, 9 * 10**6, 512, TOKENS_PER_FORWARD["causal_lm"])
    assert not plan.checkpointing and plan.tokens_per_forward > 8 * 512  # a default batch of 8 in one pass
    assert plan.tokens_per_forward <= MAX_TOKENS_PER_FORWARD
    assert "70.0 GiB free" in plan.describe() and "checkpointing" not in plan.describe()


def test_a_small_gpu_recomputes_activations_where_one_example_would_not_fit() -> None:
    kept, recomputed = (activation_bytes_per_token(QWEN_1_5B, c) for c in (False, True))
    assert recomputed * 5 < kept
    free = int(4096 * (kept + recomputed) / 2 / 0.8)  # room for 4,096 tokens between the two estimates
    plan = plan_memory(QWEN_1_5B, free, 0, 4096, TOKENS_PER_FORWARD["causal_lm"])
    assert plan.checkpointing and plan.tokens_per_forward >= 4096
    assert "gradient checkpointing on" in plan.describe()
    hopeless = plan_memory(QWEN_1_5B, 1 << 20, 0, 512, TOKENS_PER_FORWARD["causal_lm"])
    assert (hopeless.tokens_per_forward, hopeless.checkpointing) == (512, True)


def _layer_calls(model: Any) -> Iterator[list[int]]:
    """Counts the passes through the first transformer layer (through a linear layer inside it: checkpointing wraps
    the layer's own forward)."""
    from transformers.modeling_layers import GradientCheckpointingLayer

    layer = next(m for m in model.modules() if isinstance(m, GradientCheckpointingLayer))
    linear = next(m for m in layer.modules() if type(m) is torch.nn.Linear)
    calls: list[int] = []
    handle = linear.register_forward_hook(lambda *_args: calls.append(1))
    yield calls
    handle.remove()


def _loss_and_grads(learner: Any, items: list[Any]) -> tuple[float, list[torch.Tensor], int]:
    learner.set_training(True)
    params = [p for group in learner.parameter_groups() for p in group.params]
    for p in params:
        p.grad = None
    counter = _layer_calls(learner.model)
    calls = next(counter)
    out = learner.loss(items)
    out.loss_sum.backward()  # type: ignore[no-untyped-call]
    n_calls = len(calls)
    next(counter, None)
    return float(out.loss_sum.detach()), [p.grad.clone() for p in params if p.grad is not None], n_calls


def _examples() -> list[ChatExample]:
    records = [chat(text, label) for label, texts in SENTIMENT.items() for text in texts]
    return [ChatExample(record["messages"], line) for line, record in enumerate(records, 1)]


@pytest.mark.parametrize("family", ["causal_lm", "encoder"])
def test_checkpointed_layers_give_the_same_loss_and_gradients(
    family: str, tiny_causal_lm: Path, tiny_encoder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Checkpointed layers keep the model's own attention (kernels.attention_for_width): the baseline too, here.
    monkeypatch.setattr(kernels, "EAGER_MAX_WIDTH", 0)
    examples = _examples()
    task = detect_task([ex.answer for ex in examples])
    results = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        learner: Any
        if family == "causal_lm":
            tokenizer = _load_tokenizer(tiny_causal_lm)
            learner = CausalLearner(tiny_causal_lm, tokenizer, ChatEncoder(tokenizer, "model", 64), task, "cpu")
        else:
            learner = EncoderLearner(tiny_encoder, _load_tokenizer(tiny_encoder), task, "cpu", 64)
        if checkpointing:
            use_gradient_checkpointing(learner.model)
        results.append(_loss_and_grads(learner, learner.make_items(examples)))
    (loss, grads, calls), (loss_ckpt, grads_ckpt, calls_ckpt) = results
    assert calls_ckpt == 2 * calls  # each layer ran again in the backward pass
    assert loss_ckpt == pytest.approx(loss, rel=1e-6)
    assert len(grads) == len(grads_ckpt) > 0
    for kept, recomputed in zip(grads, grads_ckpt, strict=True):
        torch.testing.assert_close(recomputed, kept)


def test_a_run_short_of_memory_says_so_and_trains(
    tiny_causal_lm: Path, sentiment_files: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    train, _ = sentiment_files
    monkeypatch.setattr(run_module, "free_memory", lambda device: 1 << 20)  # as a GPU with 1 MiB left would say
    sink = ListSink()
    hp = Hyperparameters(n_epochs=1, batch_size=4)
    result = run_training(TrainSpec(str(tiny_causal_lm), train, tmp_path / "out", hyperparameters=hp), sink)
    [memory] = [m for m in sink.messages if m.startswith("GPU memory:")]
    assert "gradient checkpointing on" in memory and "up to 512 tokens per forward pass" in memory
    assert result.steps == 9 and sink.metrics[-1].train_loss > 0
