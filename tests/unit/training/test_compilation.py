"""Compiled layers train the same numbers as eager ones, only in training passes, and stay eager where compiling
cannot work."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import torch._dynamo

from localft.settings import Settings
from localft.training import Hyperparameters, TrainSpec, run_training
from localft.training.compilation import (
    COMPILE_MIN_TOKENS,
    COMPILE_MIN_TOKENS_CACHED,
    compile_layers,
    compiled_before,
    compiler_works,
    remember_compiled,
    repeated_layers,
    should_compile,
)
from localft.training.kernels import attention_for_width, fast_dropout, use_fast_dropout

from .conftest import ListSink

torch.set_num_threads(1)  # tiny models: a second thread only adds sync overhead on a busy machine


def _graphs() -> int:
    """Graphs dynamo has compiled in this process so far."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def test_auto_compiles_llm_runs_long_enough_to_repay_it_on_the_cpu_only() -> None:
    llm, cached = COMPILE_MIN_TOKENS["causal_lm"], COMPILE_MIN_TOKENS_CACHED["causal_lm"]
    assert llm is not None and cached is not None and cached < llm
    assert should_compile("auto", "causal_lm", llm, "cpu")
    assert not should_compile("auto", "causal_lm", llm - 1, "cpu")
    assert should_compile("auto", "causal_lm", cached, "cpu", cached=True)  # an earlier run's kernels are cached
    assert not should_compile("auto", "causal_lm", cached - 1, "cpu", cached=True)
    assert not should_compile("auto", "causal_lm", cached, "cpu", cached=False)
    assert not should_compile("auto", "encoder", 10**9, "cpu")  # an encoder's steps gained too little
    assert should_compile("on", "encoder", 1, "cpu")
    assert not should_compile("off", "causal_lm", 10**9, "cpu")
    assert should_compile("on", "causal_lm", 1, "cuda:0")  # `on` means every run, on a GPU too
    assert not should_compile("auto", "causal_lm", 10**9, "cuda:0")  # never measured on a GPU


def test_the_repeated_layers_are_the_decoder_and_encoder_layers(tiny_causal_lm: Path, tiny_encoder: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    llm = AutoModelForCausalLM.from_pretrained(tiny_causal_lm)
    assert repeated_layers(llm) == list(llm.model.layers) and len(llm.model.layers) >= 2
    encoder = AutoModelForSequenceClassification.from_pretrained(tiny_encoder, num_labels=3)
    assert repeated_layers(encoder) == list(encoder.bert.encoder.layer)


def _lora_model(tiny_causal_lm: Path) -> torch.nn.Module:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(tiny_causal_lm, dtype=torch.float32)
    return get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))


def _loss_and_grads(
    model: torch.nn.Module, loss: Callable[[], torch.Tensor]
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    model.zero_grad()
    value = loss()
    value.backward()  # type: ignore[no-untyped-call]
    return value.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]


def _count_compiled_calls(model: torch.nn.Module) -> list[int]:
    """Per layer, how many passes run its compiled forward from now on."""
    calls: list[int] = []
    for i, layer in enumerate(repeated_layers(model)):
        calls.append(0)
        passes: Any = layer.forward
        compiled = passes.compiled

        def counting(*args: Any, _layer: int = i, _compiled: Any = compiled, **kwargs: Any) -> Any:
            calls[_layer] += 1
            return _compiled(*args, **kwargs)

        passes.compiled = counting
    return calls


def test_compiled_lora_layers_give_the_eager_loss_and_gradients(tiny_causal_lm: Path) -> None:
    ids = torch.randint(0, 100, (3, 14), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[0, 9:] = 0  # a padded row, as a batch of unequal lengths has

    model = _lora_model(tiny_causal_lm)
    model.train()

    def loss() -> torch.Tensor:
        out: torch.Tensor = model(input_ids=ids, attention_mask=mask, labels=ids).loss
        return out

    eager_loss, eager_grads = _loss_and_grads(model, loss)
    graphs = _graphs()
    assert compile_layers(model) == len(repeated_layers(model)) > 0
    calls = _count_compiled_calls(model)
    compiled_loss, compiled_grads = _loss_and_grads(model, loss)
    assert _graphs() > graphs  # the layers really ran compiled
    # ...but the first: its input has no gradient (frozen embedding), a variant not worth compiling.
    assert calls[0] == 0 and calls[1:] == [1] * (len(calls) - 1)
    torch.testing.assert_close(compiled_loss, eager_loss, rtol=1e-5, atol=1e-6)
    assert len(compiled_grads) == len(eager_grads) > 0
    for compiled, eager in zip(compiled_grads, eager_grads, strict=True):
        torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-6)

    # Passes without gradients (validation, inference) run the layers as they were: nothing new is compiled.
    graphs = _graphs()
    with torch.inference_mode():
        model(input_ids=ids[:1, :5])  # a shape no training pass had
    assert _graphs() == graphs


def _tiny_gemma3(folder: Path) -> Path:
    """A 2-layer Gemma 3 (one sliding-window layer of 8 tokens, one global), as the built-in `gemma-3-270m` mixes
    them: their masks differ."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    config = Gemma3TextConfig(
        vocab_size=100,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        query_pre_attn_scalar=16,
        sliding_window=8,
        layer_types=["sliding_attention", "full_attention"],
        max_position_embeddings=512,
    )
    torch.manual_seed(0)
    Gemma3ForCausalLM(config).save_pretrained(folder)
    return folder


@pytest.mark.parametrize("architecture", ["llama", "gemma3"])
def test_one_compiled_graph_serves_every_kind_of_training_pass(
    architecture: str, tiny_causal_lm: Path, tmp_path: Path
) -> None:
    """One row or several, padded or not, short or up to the widest eager width: the layers compile once, and each
    pass gives the eager loss."""
    torch._dynamo.reset()  # no graph of another test to reuse
    model = _lora_model(tiny_causal_lm if architecture == "llama" else _tiny_gemma3(tmp_path))
    model.train()
    generator = torch.Generator().manual_seed(0)
    passes = []
    for rows, width, padded in [(3, 14, True), (1, 9, False), (2, 40, False), (1, 300, False), (4, 512, True)]:
        ids = torch.randint(0, 100, (rows, width), generator=generator)
        mask = torch.ones_like(ids)
        if padded:
            mask[0, width // 2 :] = 0
        passes.append((ids, mask))

    def loss(ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # As the learner runs it: the attention by width, and no loss on padding (where a sliding-window layer has no
        # key to attend to, eager attention and SDPA fill in different nonsense).
        labels = ids.masked_fill(mask == 0, -100)
        with attention_for_width(model, ids.shape[1], compiled=compiled):
            out: torch.Tensor = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        return out

    compiled = False
    eager = [_loss_and_grads(model, lambda ids=ids, mask=mask: loss(ids, mask)) for ids, mask in passes]
    compile_layers(model)
    compiled = True
    graphs = _graphs()
    for (ids, mask), (eager_loss, eager_grads) in zip(passes, eager, strict=True):
        compiled_loss, compiled_grads = _loss_and_grads(model, lambda ids=ids, mask=mask: loss(ids, mask))
        torch.testing.assert_close(compiled_loss, eager_loss, rtol=1e-5, atol=1e-6)
        for compiled_grad, eager_grad in zip(compiled_grads, eager_grads, strict=True):
            torch.testing.assert_close(compiled_grad, eager_grad, rtol=1e-4, atol=1e-6)
    assert _graphs() == graphs + 1


def test_compiled_encoder_layers_draw_the_eager_dropout_masks(tiny_encoder: Path) -> None:
    """With the fast dropout inside the compiled layers, a seeded pass draws the same masks in the same order as
    eager, so the loss and gradients match and a seeded run stays reproducible."""
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_encoder, num_labels=3)
    use_fast_dropout(model)
    model.train()
    ids = torch.randint(5, 60, (4, 10), generator=torch.Generator().manual_seed(1))
    labels = torch.tensor([0, 1, 2, 1])

    def loss() -> torch.Tensor:
        torch.manual_seed(3)
        with attention_for_width(model, ids.shape[1]):  # as the learner runs it
            out: torch.Tensor = model(input_ids=ids, labels=labels).loss
        return out

    eager_loss, eager_grads = _loss_and_grads(model, loss)
    graphs = _graphs()
    assert compile_layers(model) == len(repeated_layers(model)) > 0
    calls = _count_compiled_calls(model)
    compiled_loss, compiled_grads = _loss_and_grads(model, loss)
    assert _graphs() > graphs  # the layers really ran compiled
    assert calls == [1] * len(calls)  # full fine-tuning: every layer's input has a gradient
    torch.testing.assert_close(compiled_loss, eager_loss, rtol=1e-5, atol=1e-6)
    for compiled, eager in zip(compiled_grads, eager_grads, strict=True):
        torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-6)
    torch.manual_seed(4)  # another seed, other masks: the dropout is really on
    assert not torch.allclose(model(input_ids=ids, labels=labels).loss, eager_loss)


def test_dropout_in_a_compiled_graph_backpropagates_through_the_mask_it_drew() -> None:
    compiled = torch.compile(lambda x: fast_dropout(x * 2, 0.25, True) + 1, dynamic=True, fullgraph=True)
    x = torch.randn(64, 48, requires_grad=True)
    y = compiled(x)
    y.sum().backward()
    kept = (y - 1) != 0
    assert x.grad is not None
    torch.testing.assert_close(x.grad, kept * (2 / 0.75))  # the backward pass used the forward's mask
    assert 0.15 < 1 - kept.float().mean().item() < 0.35


def test_a_machine_that_cannot_compile_keeps_its_layers_eager(tiny_causal_lm: Path, tmp_path: Path) -> None:
    import torch._inductor.config as inductor
    from torch._inductor.utils import fresh_cache

    compiler_works.cache_clear()
    # No C++ compiler, and no kernel cached on disk or in memory that would spare inductor from needing one.
    with inductor.patch({"cpp.cxx": (None, str(tmp_path / "no-such-compiler"))}), fresh_cache():
        torch._dynamo.reset()
        try:
            model = _lora_model(tiny_causal_lm)
            forwards = [layer.forward for layer in repeated_layers(model)]
            assert compile_layers(model) == 0
            assert [layer.forward for layer in repeated_layers(model)] == forwards
        finally:
            compiler_works.cache_clear()


def test_a_run_with_compiling_on_says_so_and_trains(
    tiny_causal_lm: Path, sentiment_files: tuple[Path, Path], tmp_path: Path
) -> None:
    train, _ = sentiment_files
    sink = ListSink()
    hp = Hyperparameters(n_epochs=2, batch_size=4, learning_rate_multiplier=20.0)
    spec = TrainSpec(
        base_model=str(tiny_causal_lm),
        training_file=train,
        output_dir=tmp_path / "out",
        hyperparameters=hp,
        compile_layers="on",
    )
    cache = Settings.from_env().cache_dir
    assert not compiled_before(cache, str(tiny_causal_lm))  # a model folder of this session: never compiled
    result = run_training(spec, sink)
    assert result.steps == 18
    assert any(m.startswith("Compiling the model's 2 layers") for m in sink.messages), sink.messages
    assert any("the first time" in m for m in sink.messages), sink.messages
    assert sink.metrics[-1].train_loss < sink.metrics[0].train_loss
    # Its kernels are cached now: the next run of this model compiles from `COMPILE_MIN_TOKENS_CACHED` tokens.
    assert compiled_before(cache, str(tiny_causal_lm))
    assert not compiled_before(cache, str(tmp_path / "another-model"))


def test_compiled_kernels_are_kept_with_the_model_cache_unless_the_user_chose_a_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    layers = torch.nn.ModuleList([torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)])
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", default_cache_dir())  # what inductor sets on first use
    compile_layers(layers, tmp_path)
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "compiled")
    remember_compiled(tmp_path, "some-model")
    assert compiled_before(tmp_path, "some-model")
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "mine"))
    compile_layers(layers, tmp_path)
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "mine")
    # What an earlier run left is remembered with the kernels: in the user's folder, nothing is cached yet.
    assert not compiled_before(tmp_path, "some-model")
