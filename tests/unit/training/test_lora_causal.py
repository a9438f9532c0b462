"""LoRA training of the tiny causal LM end to end: metrics, checkpoints, classification, seed and resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from localft.errors import TrainingCancelled
from localft.training import Hyperparameters, TrainSpec, loop, lora_causal, run_training
from localft.training.auto import FORWARD_OVERHEAD, TOKENS_PER_FORWARD
from localft.training.checkpoint import latest_progress, read_checkpoint

from .conftest import ListSink

torch.set_num_threads(1)  # tiny models: a second thread only adds sync overhead on a busy machine


def spec(model: Path, train: Path, valid: Path | None, out: Path, **kw: object) -> TrainSpec:
    hp = Hyperparameters(n_epochs=2, batch_size=4, learning_rate_multiplier=20.0)
    return TrainSpec(
        base_model=str(model), training_file=train, validation_file=valid, output_dir=out, hyperparameters=hp, **kw
    )  # type: ignore[arg-type]


def adapter(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / "adapter" / "adapter_model.safetensors")


def test_trains_classifier_and_writes_self_describing_checkpoints(
    tiny_causal_lm: Path, sentiment_files: tuple[Path, Path], tmp_path: Path
) -> None:
    train, valid = sentiment_files
    sink = ListSink()
    result = run_training(spec(tiny_causal_lm, train, valid, tmp_path / "out"), sink)

    assert result.steps == 2 * 9  # 36 examples / batch 4, two epochs
    assert [c.step for c in sink.checkpoints] == [9, 18]
    assert [m.step for m in sink.metrics] == list(range(1, 19))
    first, last = sink.metrics[0], sink.metrics[-1]
    assert last.train_loss < first.train_loss
    assert last.full_valid_loss is not None and set(last.classification) >= {"accuracy", "macro_f1"}
    meta = read_checkpoint(result.final_checkpoint)
    assert (meta.family, meta.task, meta.step, meta.epoch) == ("causal_lm", "classification", 18, 2)
    assert meta.labels == ["negative", "neutral", "positive"]
    assert meta.hyperparameters["batch_size"] == 4 and meta.hyperparameters["n_epochs"] == 2
    assert (result.final_checkpoint / "adapter" / "adapter_config.json").is_file()
    assert (result.final_checkpoint / "tokenizer" / "tokenizer.json").is_file()
    assert any("classification into 3 labels" in m for m in sink.messages)


def test_same_seed_same_weights(tiny_causal_lm: Path, sentiment_files: tuple[Path, Path], tmp_path: Path) -> None:
    train, _ = sentiment_files
    a = run_training(spec(tiny_causal_lm, train, None, tmp_path / "a", seed=7), ListSink())
    b = run_training(spec(tiny_causal_lm, train, None, tmp_path / "b", seed=7), ListSink())
    c = run_training(spec(tiny_causal_lm, train, None, tmp_path / "c", seed=8), ListSink())
    wa, wb, wc = adapter(a.final_checkpoint), adapter(b.final_checkpoint), adapter(c.final_checkpoint)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)


_TRAIN_IN_A_NEW_PROCESS = """
import sys
from pathlib import Path
import torch
from localft.training import Hyperparameters, TrainSpec, run_training

class Quiet:
    def log(self, message, level="info"): pass
    def log_metrics(self, metrics): pass
    def on_checkpoint(self, checkpoint): pass
    def should_stop(self): return False

torch.set_num_threads(1)
model, train, out = sys.argv[1:]
hp = Hyperparameters(n_epochs=2, batch_size=4, learning_rate_multiplier=20.0)
spec = TrainSpec(base_model=model, training_file=Path(train), output_dir=Path(out), hyperparameters=hp, seed=7)
run_training(spec, Quiet())
"""


def test_same_seed_same_weights_in_another_process(
    tiny_causal_lm: Path, sentiment_files: tuple[Path, Path], tmp_path: Path
) -> None:
    """A job resumed or rerun after a restart runs in a new process (its own memory layout and thread pool): the same
    seed still gives the same weights, to the bit."""
    import subprocess
    import sys

    train, _ = sentiment_files
    here = run_training(spec(tiny_causal_lm, train, None, tmp_path / "here", seed=7), ListSink())
    args = [str(tiny_causal_lm), str(train), str(tmp_path / "there")]
    subprocess.run([sys.executable, "-c", _TRAIN_IN_A_NEW_PROCESS, *args], check=True, timeout=300)
    there = tmp_path / "there" / here.final_checkpoint.name
    wa, wb = adapter(here.final_checkpoint), adapter(there)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_resume_matches_uninterrupted_run(
    tiny_causal_lm: Path, sentiment_files: tuple[Path, Path], tmp_path: Path
) -> None:
    train, valid = sentiment_files
    full = run_training(spec(tiny_causal_lm, train, valid, tmp_path / "full"), ListSink())

    stopping = ListSink(stop_after_checkpoints=1)
    with pytest.raises(TrainingCancelled):
        run_training(spec(tiny_causal_lm, train, valid, tmp_path / "part"), stopping)
    first = stopping.checkpoints[0].path
    resumed_sink = ListSink()
    resumed = run_training(spec(tiny_causal_lm, train, valid, tmp_path / "part", resume_from=first), resumed_sink)

    assert resumed.steps == full.steps and resumed.trained_tokens == full.trained_tokens
    assert [m.step for m in resumed_sink.metrics] == list(range(10, 19))
    wf, wr = adapter(full.final_checkpoint), adapter(resumed.final_checkpoint)
    for key in wf:
        torch.testing.assert_close(wr[key], wf[key], rtol=1e-5, atol=1e-6)


def test_a_crash_mid_epoch_resumes_from_the_last_progress_save(
    tiny_causal_lm: Path, sentiment_files: tuple[Path, Path], tmp_path: Path
) -> None:
    train, valid = sentiment_files
    full = run_training(spec(tiny_causal_lm, train, valid, tmp_path / "full", save_every_s=None), ListSink())

    # save_every_s=0: a progress save after every step that does not end an epoch; stopped in the middle of epoch 2.
    crashed = ListSink(stop_after_steps=14)
    with pytest.raises(TrainingCancelled):
        run_training(spec(tiny_causal_lm, train, valid, tmp_path / "part", save_every_s=0.0), crashed)
    assert [c.step for c in crashed.checkpoints] == [9]  # progress saves are not checkpoints
    saves = sorted(p.name for p in (tmp_path / "part").glob("progress-*"))
    assert saves == ["progress-000014"]  # each save replaced the one before
    point = latest_progress(tmp_path / "part")
    assert point is not None and point[0] == 14

    resumed_sink = ListSink()
    resumed = run_training(
        spec(tiny_causal_lm, train, valid, tmp_path / "part", resume_from=point[1], save_every_s=None), resumed_sink
    )
    assert [m.step for m in resumed_sink.metrics] == list(range(15, 19))
    assert resumed.steps == full.steps and resumed.trained_tokens == full.trained_tokens
    assert latest_progress(tmp_path / "part") is None  # the epoch checkpoint removed the progress save
    wf, wr = adapter(full.final_checkpoint), adapter(resumed.final_checkpoint)
    for key in wf:
        torch.testing.assert_close(wr[key], wf[key], rtol=1e-5, atol=1e-6)


def test_the_grouping_into_forward_passes_leaves_training_unchanged(
    tiny_causal_lm: Path, sentiment_files: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each pass's loss is normalised by the whole batch's targets: one row per pass trains the adapter one pass
    per batch does. In fp32: bf16 rounds differently at each batch shape."""
    train, _ = sentiment_files
    for module in (loop, lora_causal):
        monkeypatch.setattr(module, "bf16_available", lambda device: False)
    monkeypatch.setitem(FORWARD_OVERHEAD, "causal_lm", 10**9)
    whole = run_training(spec(tiny_causal_lm, train, None, tmp_path / "whole", seed=3), ListSink())
    monkeypatch.setitem(TOKENS_PER_FORWARD, "causal_lm", 1)
    split = run_training(spec(tiny_causal_lm, train, None, tmp_path / "split", seed=3), ListSink())
    ww, ws = adapter(whole.final_checkpoint), adapter(split.final_checkpoint)
    assert any(not torch.equal(ww[k], ws[k]) for k in ww)  # the float sums ran in another order: not a no-op
    for key in ww:
        torch.testing.assert_close(ws[key], ww[key], rtol=1e-4, atol=1e-5)


def test_skipping_the_adapter_input_casts_changes_no_number(tiny_causal_lm: Path) -> None:
    """Under bf16 autocast, peft's cast of a LoRA layer's input to fp32 is undone before the multiply: without it
    the loss and the adapter's gradients are the same, bit for bit."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    ids = torch.randint(0, 100, (2, 12), generator=torch.Generator().manual_seed(0))

    def loss_and_grads(skip: bool) -> tuple[torch.Tensor, list[torch.Tensor], int]:
        torch.manual_seed(0)
        base = AutoModelForCausalLM.from_pretrained(tiny_causal_lm, dtype=torch.float32)
        model = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
        for param in model.parameters():
            if not param.requires_grad:
                param.data = param.data.to(torch.bfloat16)
        if skip:
            lora_causal.skip_adapter_input_casts(model)
        with torch.profiler.profile() as profile, torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(input_ids=ids, labels=ids).loss
        copies = sum(event.count for event in profile.key_averages() if event.key == "aten::_to_copy")
        loss.backward()
        return loss.detach(), [p.grad for p in model.parameters() if p.requires_grad], copies

    (cast_loss, cast_grads, cast_copies), (loss, grads, copies) = loss_and_grads(False), loss_and_grads(True)
    assert copies < cast_copies  # the casts were really skipped
    assert torch.equal(loss, cast_loss) and len(grads) == len(cast_grads) > 0
    assert all(torch.equal(a, b) for a, b in zip(grads, cast_grads, strict=True))
