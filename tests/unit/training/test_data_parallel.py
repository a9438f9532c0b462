"""One job on several processes: two gloo processes on the CPU train what one process trains, write the same
checkpoints and events, and a run resumes on another number of processes. Slow: each process imports torch and
transformers and loads the model."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from localft.errors import TrainingCancelled, TrainingInterrupted
from localft.training import Hyperparameters, TrainSpec, run_training
from localft.training.checkpoint import read_checkpoint

from .conftest import ListSink, sentiment_records, write_jsonl

pytestmark = pytest.mark.slow
torch.set_num_threads(1)


def _adapter(checkpoint: Path) -> dict[str, torch.Tensor]:
    return load_file(checkpoint / "adapter" / "adapter_model.safetensors")


def _assert_same_weights(a: Path, b: Path) -> None:
    """The same adapter up to rounding: with bf16 autocast, a batch split across processes rounds differently, and
    AdamW (which scales each update by the gradient's history) turns that into differences of a few per cent of an
    update where a gradient is near zero; training on a process's half alone, or gradients not summed, differs by
    tens of per cent."""
    first, second = _adapter(a), _adapter(b)
    assert first.keys() == second.keys()
    for name in first:
        assert first[name].norm() > 0, name  # lora_B starts at zero: it has been trained
        difference = float((second[name] - first[name]).norm() / first[name].norm())
        assert difference < 0.05, name


def test_two_processes_train_what_one_trains_and_resume_on_one(tiny_causal_lm: Path, tmp_path: Path) -> None:
    train = write_jsonl(tmp_path / "train.jsonl", sentiment_records(2))  # 18 examples: 3 steps of 6 an epoch
    valid = write_jsonl(tmp_path / "valid.jsonl", sentiment_records(1))
    hp = Hyperparameters(n_epochs=2, batch_size=6, learning_rate_multiplier=5.0)
    spec = TrainSpec(str(tiny_causal_lm), train, tmp_path / "one", valid, hp, seed=1, device="cpu")

    one = ListSink()
    alone = run_training(spec, one)

    two = ListSink(stop_after_checkpoints=1)  # a pause after the first epoch
    with pytest.raises(TrainingCancelled):
        run_training(replace(spec, output_dir=tmp_path / "two", devices=2), two)
    assert [m.step for m in two.metrics] == [m.step for m in one.metrics][: len(two.metrics)] == [1, 2, 3]
    for mine, theirs in zip(two.metrics, one.metrics, strict=False):
        assert mine.train_loss == pytest.approx(theirs.train_loss, rel=2e-3)
        assert mine.train_mean_token_accuracy == pytest.approx(theirs.train_mean_token_accuracy)
    assert two.metrics[-1].classification == pytest.approx(one.metrics[2].classification)
    [first] = two.checkpoints
    assert (first.step, first.path) == (3, tmp_path / "two" / "step-000003")
    _assert_same_weights(one.checkpoints[0].path, first.path)
    meta = read_checkpoint(first.path)
    assert meta.hyperparameters["devices"] == 2
    assert read_checkpoint(one.checkpoints[0].path).hyperparameters["devices"] == 1
    assert any("on 2 data-parallel processes on cpu" in m for m in two.messages)
    assert sorted(p.name for p in (tmp_path / "two" / "processes").iterdir()) == ["rank-0.log", "rank-1.log"]

    resumed = ListSink()
    result = run_training(replace(spec, output_dir=tmp_path / "two", resume_from=first.path), resumed)
    assert [m.step for m in resumed.metrics] == [4, 5, 6]
    assert result.steps == alone.steps == 6 and result.trained_tokens == alone.trained_tokens
    _assert_same_weights(alone.final_checkpoint, result.final_checkpoint)


def test_a_process_killed_mid_run_fails_the_run_and_takes_the_others_with_it(
    tiny_encoder: Path, tmp_path: Path
) -> None:
    import psutil

    train = write_jsonl(tmp_path / "train.jsonl", sentiment_records(8))
    hp = Hyperparameters(n_epochs=50, batch_size=2)  # long enough to be killed in
    spec = TrainSpec(str(tiny_encoder), train, tmp_path / "out", hyperparameters=hp, device="cpu", devices=2)
    sink = ListSink()
    outcome: list[BaseException] = []

    def train_in_thread() -> None:
        try:
            run_training(spec, sink)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=train_in_thread)
    thread.start()
    deadline = time.monotonic() + 300
    while len(sink.metrics) < 2 and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    ranks = [p for p in psutil.Process().children() if "localft.training.distributed" in " ".join(p.cmdline())]
    assert len(ranks) == 2, sink.messages
    second = next(p for p in ranks if p.environ().get("RANK") == "1")
    second.kill()
    thread.join(120)
    assert not thread.is_alive()
    [error] = outcome
    assert isinstance(error, TrainingInterrupted)  # the job goes back to the queue (jobs.worker), not failed
    assert "Data-parallel process 1 of 2 exited with code -9" in error.message
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in ranks)  # none left behind


CHILD = """
import json, sys, torch, torch.distributed as dist
from localft.training.parallel import DataParallel
rank, port = int(sys.argv[1]), int(sys.argv[2])
dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
group = DataParallel("cpu")
shared, alone, untouched = (torch.nn.Parameter(torch.zeros(3)) for _ in range(3))
shared.grad = torch.full((3,), float(rank + 1))
alone.grad = torch.ones(3) if rank == 1 else None  # only the second process touched it
group.sum_gradients([shared, alone, untouched])
start = torch.nn.Parameter(torch.full((2,), float(rank)))
group.same_start([start])
print(json.dumps([shared.grad.tolist(), None if alone.grad is None else alone.grad.tolist(), untouched.grad,
                  group.sum(1.5, rank), group.any(rank == 1), group.share(list(range(5))), start.tolist()]))
dist.destroy_process_group()
"""


def test_gradients_are_summed_and_untouched_parameters_keep_none() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    processes = [
        subprocess.Popen([sys.executable, "-c", CHILD, str(rank), str(port)], stdout=subprocess.PIPE, text=True)
        for rank in range(2)
    ]
    first, second = (json.loads(process.communicate(timeout=120)[0]) for process in processes)
    assert first[:5] == second[:5] == [[3.0, 3.0, 3.0], [1.0, 1.0, 1.0], None, [3.0, 1.0], True]
    assert (first[5], second[5]) == ([0, 2, 4], [1, 3])
    assert first[6] == second[6] == [0.0, 0.0]  # the first process's values
