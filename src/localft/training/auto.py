"""What `"auto"` means: hyperparameters resolved from the data size and the model family.

- `n_epochs`: for LLMs OpenAI's rule (`localft.data.budget.auto_n_epochs`: 3 epochs, more for small files, fewer
  for big ones). Encoders train as many epochs as add up to `MIN_ENCODER_STEPS` optimizer steps, 1 to 10: their
  head starts from a linear probe (`training.encoder_head`), so a fixed number of steps tunes it whatever the file's
  size, and big files need no more than one pass (docs/studies/few-shot-classifiers.md). `training_budget` gives
  validation reports the family's rule, so `localft validate --model` shows the epochs the job will run.
- `batch_size`: per family, picked by measurement on this CPU (docs/studies/training-defaults.md): 8 for causal LMs, 16
for
  encoders; smaller for tiny files so an epoch still makes about ten optimizer steps.
- `learning_rate_multiplier`: 1.0, which scales the family's base learning rate (LoRA 1e-3, encoder fine-tuning
  1e-4), chosen by a sweep on real data (`benchmarks/bench_defaults.py`, docs/studies/training-defaults.md); the value
  that
  actually ran is always reported.

Batches that do not fit the per-forward token budget are split into micro-batches with gradient accumulation, so the
user's `batch_size` is honoured on any machine.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

from localft.data.budget import OPENAI_BUDGET, TrainingBudget, auto_n_epochs
from localft.errors import InvalidRequestError
from localft.training.hparams import Hyperparameters

Family = Literal["causal_lm", "encoder"]

# LoRA at 2e-4 (the common recipe) left SmolLM2 at 61% on the tutorial's 100 airline tweets after its 39 steps;
# 1e-3 gave 71% and 2e-3 73% (docs/studies/training-defaults.md). 1e-3 takes nearly all of the gain at half the step
# size, safer for
# the longer runs of bigger files that the sweep did not cover.
BASE_LEARNING_RATE: dict[Family, float] = {"causal_lm": 1e-3, "encoder": 1e-4}
AUTO_BATCH_SIZE: dict[Family, int] = {"causal_lm": 8, "encoder": 16}
MAX_LENGTH: dict[Family, int] = {"causal_lm": 512, "encoder": 256}
"""Default truncation length in tokens (prompt + answer)."""
TOKENS_PER_FORWARD: dict[Family, int] = {"causal_lm": 4096, "encoder": 8192}
"""Padded tokens per forward pass before a batch is split into micro-batches (bounds activation memory)."""
FORWARD_OVERHEAD: dict[Family, int] = {"causal_lm": 128, "encoder": 170}
"""A training forward pass's fixed cost in tokens: what splitting a batch by length must save to pay (measured in
docs/studies/training-speed.md, "Real-length batches")."""
MIN_STEPS_PER_EPOCH = 10
MIN_ENCODER_STEPS = 80
"""Optimizer steps an encoder's auto epochs add up to at least, within `MAX_ENCODER_EPOCHS_FOR_STEPS`."""
MAX_ENCODER_EPOCHS_FOR_STEPS = 10
"""The most epochs `MIN_ENCODER_STEPS` may ask for: small files reach their best in fewer steps."""
LORA_RANK = 8
LORA_ALPHA_PER_RANK = 2.0
"""`lora_alpha: "auto"` is this times the rank: 16 at rank 8, the adapter scale (alpha / rank = 2) the base learning
rate was chosen at, kept when a job changes the rank."""
LORA_ALPHA = LORA_RANK * LORA_ALPHA_PER_RANK


@dataclass(frozen=True)
class Resolved:
    """Hyperparameters with no "auto" left, as recorded with the job and its checkpoints."""

    n_epochs: int
    batch_size: int
    learning_rate_multiplier: float
    learning_rate: float
    max_length: int
    lora_rank: int | None = None
    """LLMs' LoRA shape (None for encoders, which are fine-tuned in full)."""
    lora_alpha: float | None = None
    lora_dropout: float | None = None
    lora_target_modules: list[str] | None = None
    """The layers given an adapter; None: the default rule, which the learner applies to the model's layers."""

    def to_dict(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if value is not None}


def resolve(hparams: Hyperparameters, family: Family, n_examples: int) -> Resolved:
    """Fill in every "auto" for a family and a training set of `n_examples`."""
    if hparams.batch_size == "auto":
        batch_size = max(1, min(AUTO_BATCH_SIZE[family], n_examples // MIN_STEPS_PER_EPOCH))
    else:
        batch_size = min(hparams.batch_size, max(n_examples, 1))
    if hparams.n_epochs != "auto":
        n_epochs = hparams.n_epochs
    elif family == "encoder":
        steps_per_epoch = max(1, -(-n_examples // batch_size))
        n_epochs = max(1, min(-(-MIN_ENCODER_STEPS // steps_per_epoch), MAX_ENCODER_EPOCHS_FOR_STEPS))
    else:
        n_epochs = auto_n_epochs(n_examples)
    multiplier = 1.0 if hparams.learning_rate_multiplier == "auto" else float(hparams.learning_rate_multiplier)
    resolved = Resolved(
        n_epochs=n_epochs,
        batch_size=batch_size,
        learning_rate_multiplier=multiplier,
        learning_rate=BASE_LEARNING_RATE[family] * multiplier,
        max_length=MAX_LENGTH[family] if hparams.max_length == "auto" else hparams.max_length,
    )
    if family == "encoder":
        if hparams.lora_given():
            given = hparams.lora_given()
            raise InvalidRequestError(
                f"{', '.join(given)}: LoRA hyperparameters apply to LLMs, and an encoder is fine-tuned in full. "
                "Remove them, or choose an LLM base model.",
                param=f"hyperparameters.{given[0]}",
                code="invalid_hyperparameters",
            )
        return resolved
    rank = LORA_RANK if hparams.lora_rank == "auto" else hparams.lora_rank
    return replace(
        resolved,
        lora_rank=rank,
        lora_alpha=rank * LORA_ALPHA_PER_RANK if hparams.lora_alpha == "auto" else float(hparams.lora_alpha),
        lora_dropout=0.0 if hparams.lora_dropout == "auto" else float(hparams.lora_dropout),
        lora_target_modules=None if hparams.lora_target_modules == "auto" else list(hparams.lora_target_modules),
    )


def within_positions(hp: Resolved, positions: int | None) -> Resolved:
    """`hp` with `max_length` cut to the model's positions: past them it would ask for position embeddings the model
    does not have."""
    if positions is None or hp.max_length <= positions:
        return hp
    return replace(hp, max_length=positions)


def training_budget(family: Family | None) -> TrainingBudget:
    """The family's `n_epochs: "auto"` rule and default length, for validation reports to show what a job runs; no
    family (no model named) gives OpenAI's rule and no length."""
    if family is None:
        return OPENAI_BUDGET
    if family == "encoder":
        return TrainingBudget(
            f"encoders': {MIN_ENCODER_STEPS} optimizer steps, within 1-{MAX_ENCODER_EPOCHS_FOR_STEPS} epochs",
            lambda n_examples: resolve(Hyperparameters(), "encoder", n_examples).n_epochs,
            max_length=MAX_LENGTH["encoder"],
            cut="the encoder reads the text's first tokens up to the limit",
        )
    return replace(
        OPENAI_BUDGET,
        max_length=MAX_LENGTH["causal_lm"],
        cut="training drops tokens from the middle of the conversation and keeps the answer",
    )
