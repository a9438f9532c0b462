"""The training loop both model families share: batches, accumulation, metrics, checkpoints, cancel and resume.

A family plugs in as a `Learner` (lora_causal.py, encoder_head.py): it turns a micro-batch into a summed loss and
knows how to validate and save itself. The loop owns everything about time: the seeded data order, the optimizer and
schedule, when to validate, when to write a checkpoint, and restoring all of it from `trainer_state.pt`, so a resumed
run continues exactly where the uninterrupted one would be. Where several processes train one model
(`training.parallel`), each runs this loop on its share of every batch and the first one reports and writes.
"""

from __future__ import annotations

import math
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import torch

from localft.base_models import native_bf16
from localft.base_models.grouping import group_by_length
from localft.devices import device_type
from localft.errors import TrainingCancelled, TrainingError
from localft.training.checkpoint import (
    STATE_FILE,
    CheckpointMeta,
    commit,
    partial_dir,
    progress_dir,
    remove_progress,
    write_meta,
)
from localft.training.dataset import ChatExample
from localft.training.interfaces import CheckpointInfo, EventSink, StepMetrics
from localft.training.parallel import Collective, OneProcess

VALIDATIONS_PER_RUN = 10
"""How many times per run the per-step metrics include a validation sample (every step would double the cost)."""
VALID_SAMPLE = 16
"""Validation examples in that sample."""
MAX_GRAD_NORM = 1.0
WARMUP_FRACTION = 0.06


@dataclass
class BatchLoss:
    """A micro-batch's summed loss (a tensor, with grad when training) and its target/correct counts."""

    loss_sum: torch.Tensor
    n_targets: int
    n_correct: int


@dataclass(frozen=True)
class ParameterGroup:
    """Trainable parameters that share a learning rate: the plan's, or `min_lr` where that is higher."""

    params: list[torch.nn.Parameter]
    min_lr: float = 0.0
    """The least rate these parameters learn at, whatever the plan's (a head that starts from random weights must
    move far even where a user turns the rate of the pretrained weights down)."""
    name: str = ""
    """What these parameters are, where the rate may not be the plan's (the job's events say it)."""

    def learning_rate(self, planned: float) -> float:
        return max(planned, self.min_lr)


@dataclass(frozen=True)
class Evaluation:
    """Full validation at an epoch end."""

    loss: float
    token_accuracy: float
    classification: dict[str, float] = field(default_factory=dict)


class Learner(Protocol):
    """What a model family provides to the loop."""

    def make_items(self, examples: Sequence[ChatExample]) -> list[Any]:
        """Encode examples once, before training (token ids and targets)."""

    def parameter_groups(self) -> list[ParameterGroup]:
        """The parameters training updates (the others stay frozen), grouped by learning rate."""

    def targets(self, item: Any) -> int:
        """Loss targets in one item (answer tokens; 1 for an encoder example)."""

    def tokens(self, item: Any) -> int:
        """Tokens in one item (what batching budgets and `trained_tokens` count)."""

    def loss(self, items: Sequence[Any]) -> BatchLoss: ...

    def evaluate(self, items: Sequence[Any], classify: bool) -> Evaluation:
        """Loss and token accuracy over validation items (no grad); with `classify`, classification metrics too."""

    def save(self, folder: Path) -> None:
        """Write the trained weights and tokenizer into a checkpoint folder."""

    def load(self, folder: Path) -> None:
        """Load the trained weights of a checkpoint folder written by `save`."""

    def set_training(self, training: bool) -> None: ...


@dataclass(frozen=True)
class Plan:
    """How long and how to train, already resolved."""

    n_epochs: int
    batch_size: int
    learning_rate: float
    seed: int
    tokens_per_forward: int
    forward_overhead: int = 0
    """A forward pass's fixed cost in token-equivalents (`base_models.grouping`)."""
    weight_decay: float = 0.0


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    """The example order of one epoch: a function of (seed, epoch) only, so resuming needs no RNG of its own."""
    order = list(range(n))
    random.Random(f"{seed}:{epoch}").shuffle(order)
    return order


def steps_per_epoch(n: int, batch_size: int) -> int:
    return -(-n // batch_size)


@dataclass
class _Progress:
    step: int = 0
    epoch: int = 0
    """Completed epochs."""
    trained_tokens: int = 0


MetaFn = Callable[[int, int, dict[str, Any]], CheckpointMeta]
"""(step, epoch, metrics) -> the description written into a checkpoint."""


@dataclass
class TrainLoop:
    """One run of the loop; `run()` returns the last checkpoint, or raises `TrainingCancelled`."""

    learner: Learner
    train_items: Sequence[Any]
    valid_items: Sequence[Any]
    plan: Plan
    sink: EventSink
    output_dir: Path
    meta_for: MetaFn
    max_checkpoints: int = 3
    save_every_s: float | None = None
    """Seconds of training between mid-epoch progress saves (checkpoint.py); None saves at epoch ends only."""
    writes_checkpoints: bool = True
    """False for runs whose weights are used in memory only (`auto`'s cross-validation folds)."""
    progress: _Progress = field(default_factory=_Progress)
    last_metrics: StepMetrics | None = None
    parallel: Collective = field(default_factory=OneProcess)
    """The processes training this model together (`training.parallel`); one by default."""

    def __post_init__(self) -> None:
        torch.manual_seed(self.plan.seed)
        groups = self.learner.parameter_groups()
        self.parameters = [p for group in groups for p in group.params]
        # The fused kernel updates all parameters in one pass over memory: encoder steps (22M parameters, all
        # trained) went from 41.5 to 45-48 examples/s in an A/B here (bench_training); LoRA steps did not change.
        self.optimizer = torch.optim.AdamW(
            [{"params": group.params, "lr": group.learning_rate(self.plan.learning_rate)} for group in groups],
            lr=self.plan.learning_rate,
            weight_decay=self.plan.weight_decay,
            fused=True,
        )
        self.total_steps = steps_per_epoch(len(self.train_items), self.plan.batch_size) * self.plan.n_epochs
        warmup = int(self.total_steps * WARMUP_FRACTION)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, _linear_schedule(warmup, self.total_steps))
        self.valid_every = max(1, self.total_steps // VALIDATIONS_PER_RUN)
        sample = epoch_order(len(self.valid_items), self.plan.seed, -1)[:VALID_SAMPLE]
        self.valid_sample = [self.valid_items[i] for i in sample]
        self._last_step_metrics: StepMetrics | None = None
        self._saved_at = time.monotonic()

    def resume(self, folder: Path) -> None:
        """Continue from a checkpoint or progress save of this run: weights, optimizer, schedule, RNG and position
        (a progress save's position is mid-epoch: `run` skips the batches already trained)."""
        self.learner.load(folder)
        state = torch.load(folder / STATE_FILE, weights_only=False)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        self.progress = _Progress(step=state["step"], epoch=state["epoch"], trained_tokens=state["trained_tokens"])

    def run(self) -> Path | None:
        last: Path | None = None
        per_epoch = steps_per_epoch(len(self.train_items), self.plan.batch_size)
        self._saved_at = time.monotonic()
        self.parallel.same_start(self.parameters)
        for epoch in range(self.progress.epoch, self.plan.n_epochs):
            order = epoch_order(len(self.train_items), self.plan.seed, epoch)
            done = max(0, self.progress.step - epoch * per_epoch)  # steps of this epoch before a progress save
            for start in range(done * self.plan.batch_size, len(order), self.plan.batch_size):
                if self.parallel.any(self.sink.should_stop()):
                    raise TrainingCancelled(f"Training stopped at step {self.progress.step} of {self.total_steps}.")
                batch = [self.train_items[i] for i in order[start : start + self.plan.batch_size]]
                metrics = self._step(batch, epoch)
                self._last_step_metrics = metrics
                if start + self.plan.batch_size < len(order):  # the epoch's last step is logged by _end_epoch
                    self._report(metrics)
                    due = self.save_every_s is not None and time.monotonic() - self._saved_at >= self.save_every_s
                    if self.parallel.any(due):  # one process's clock decides for all
                        self._save_progress(metrics)
            self.progress.epoch = epoch + 1
            last = self._end_epoch(epoch)
        return last

    def _step(self, batch: list[Any], epoch: int) -> StepMetrics:
        self.learner.set_training(True)
        targets = sum(self.learner.targets(item) for item in batch)
        lengths = [self.learner.tokens(item) for item in batch]
        mine = self.parallel.share(batch)
        loss_total, correct = 0.0, 0
        # The batch runs in passes grouped by length. Normalising each pass by the whole batch's targets makes
        # their accumulated gradient equal to one big batch's, whatever the grouping (and the processes' shares).
        mine_lengths = [self.learner.tokens(item) for item in mine]
        for part in group_by_length(mine, mine_lengths, self.plan.tokens_per_forward, self.plan.forward_overhead):
            out = self.learner.loss(part)
            (out.loss_sum / max(targets, 1)).backward()  # type: ignore[no-untyped-call]
            loss_total += float(out.loss_sum.detach())
            correct += out.n_correct
        self.parallel.sum_gradients(self.parameters)
        loss_total, summed_correct = self.parallel.sum(loss_total, correct)
        correct = round(summed_correct)
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.parameters, MAX_GRAD_NORM))
        if not (math.isfinite(loss_total) and math.isfinite(grad_norm)):
            raise _diverged(self.progress.step + 1, self.total_steps, loss_total, grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.progress.step += 1
        self.progress.trained_tokens += sum(lengths)
        valid: Evaluation | None = None
        if self.valid_sample and self.progress.step % self.valid_every == 0 and self.parallel.is_writer:
            valid = self.learner.evaluate(self.valid_sample, classify=False)  # reported by the writer only
        return StepMetrics(
            step=self.progress.step,
            total_steps=self.total_steps,
            train_loss=loss_total / max(targets, 1),
            train_mean_token_accuracy=correct / max(targets, 1),
            valid_loss=valid.loss if valid else None,
            valid_mean_token_accuracy=valid.token_accuracy if valid else None,
            epoch=epoch + 1,
            trained_tokens=self.progress.trained_tokens,
        )

    def _end_epoch(self, epoch: int) -> Path | None:
        """Full validation, the epoch's metrics event, then a checkpoint."""
        last = self._last_step_metrics
        assert last is not None  # an epoch has at least one step
        if self.valid_items:
            # Every process validates: it may set state that training reads (an encoder's thresholds).
            full = self.learner.evaluate(self.valid_items, classify=True)
            sample = self.learner.evaluate(self.valid_sample, classify=False)
            last = replace(
                last,
                valid_loss=sample.loss,
                valid_mean_token_accuracy=sample.token_accuracy,
                full_valid_loss=full.loss,
                full_valid_mean_token_accuracy=full.token_accuracy,
                classification=full.classification,
            )
        self._report(last)
        self.last_metrics = last
        return self._checkpoint(last) if self.writes_checkpoints else None

    def _report(self, metrics: StepMetrics) -> None:
        if self.parallel.is_writer:
            self.sink.log_metrics(metrics)

    def _checkpoint(self, metrics: StepMetrics) -> Path:
        step = self.progress.step
        if not self.parallel.is_writer:
            return self.output_dir / f"step-{step:06d}"
        final = self._write(self.output_dir / f"step-{step:06d}", metrics)
        remove_progress(self.output_dir)  # older than this checkpoint
        self._prune()
        self.sink.on_checkpoint(CheckpointInfo(step=step, epoch=self.progress.epoch, path=final, metrics=metrics))
        return final

    def _save_progress(self, metrics: StepMetrics) -> None:
        """A mid-epoch save to resume from after a crash; the one before it goes once this one is complete."""
        self._saved_at = time.monotonic()
        if not self.parallel.is_writer:
            return
        saved = self._write(progress_dir(self.output_dir, self.progress.step), metrics)
        remove_progress(self.output_dir, keep=saved)

    def _write(self, final: Path, metrics: StepMetrics) -> Path:
        """Weights, the loop's state and the description, assembled aside and renamed into place."""
        folder = partial_dir(final)
        self.learner.save(folder)
        state = {
            "step": self.progress.step,
            "epoch": self.progress.epoch,
            "trained_tokens": self.progress.trained_tokens,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(),
        }
        torch.save(state, folder / STATE_FILE)
        write_meta(folder, self.meta_for(self.progress.step, self.progress.epoch, metrics.as_event_data()))
        commit(folder, final)
        self._saved_at = time.monotonic()
        return final

    def _prune(self) -> None:
        """Keep only the newest `max_checkpoints` checkpoints of this run."""
        folders = sorted(p for p in self.output_dir.glob("step-*") if p.is_dir() and not p.name.endswith(".partial"))
        for old in folders[: -self.max_checkpoints]:
            shutil.rmtree(old, ignore_errors=True)


def _diverged(step: int, total: int, loss: float, grad_norm: float) -> TrainingError:
    """The error that ends a run whose numbers stopped being finite: a model trained on from there would be NaN,
    and publishing it would answer every request with an error."""
    what = f"loss {loss}" if not math.isfinite(loss) else f"gradient norm {grad_norm}"
    return TrainingError(
        f"Training diverged at step {step} of {total}: the {what} is not a finite number, so no model was "
        "published. The learning rate is too high for this model and data: lower learning_rate_multiplier (or "
        "use 'auto') and create a new job.",
        param="hyperparameters.learning_rate_multiplier",
        code="non_finite_loss",
    )


def _linear_schedule(warmup: int, total: int) -> Callable[[int], float]:
    """Linear warm-up then linear decay to zero (the schedule OpenAI's fine-tuning reports)."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total - step) / max(1, total - warmup))

    return factor


def bf16_available(device: str) -> bool:
    """Whether training uses bf16 autocast: where the device has native bf16 (a hook the benchmarks patch to
    measure the fp32 path on the same machine)."""
    return native_bf16(device)


def autocast(device: str) -> torch.autocast:
    """Mixed precision for forward passes: weights and optimizer state stay fp32, matmuls run in bf16."""
    return torch.autocast(device_type(device), dtype=torch.bfloat16, enabled=bf16_available(device))
