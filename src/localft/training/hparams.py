"""Hyperparameters as OpenAI accepts them, plus localft's extensions (`max_length`, the LoRA shape, `devices`): each
`"auto"` or a value, validated on construction."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from localft.errors import InvalidRequestError

Auto = Literal["auto"]
ALL_LINEAR = "all-linear"
"""`lora_target_modules` meaning every linear layer of the model but its output head (peft's name for it)."""
OPENAI_KEYS = ("n_epochs", "batch_size", "learning_rate_multiplier")
EXTENSION_KEYS = ("max_length", "lora_rank", "lora_alpha", "lora_dropout", "lora_target_modules", "devices")
"""localft's own hyperparameters: a job shows each only where it was given, so a job that uses none of them looks
exactly like OpenAI's."""
LORA_KEYS = ("lora_rank", "lora_alpha", "lora_dropout", "lora_target_modules")
MAX_LEARNING_RATE_MULTIPLIER = 100.0
"""localft's own bound (OpenAI documents only "> 0"): far past where any run here still learns, and well short of
the 1e308 that trained a model to NaN. Training also fails a job whose loss stops being finite (`training.loop`)."""


@dataclass(frozen=True)
class Hyperparameters:
    """The three knobs of OpenAI's supervised method, and localft's extensions. `"auto"` is resolved by the engine
    from the data and the model (`training.auto`)."""

    n_epochs: int | Auto = "auto"
    """Passes over the training file, 1-50; auto follows OpenAI's rule (3, more for small files), with more for
    encoders on files that rule leaves short of steps (`training.auto`)."""
    batch_size: int | Auto = "auto"
    """Examples per optimizer step, 1-256; gradient accumulation is used when it does not fit in memory."""
    learning_rate_multiplier: float | Auto = "auto"
    """Scales the model family's base learning rate; > 0 and at most `MAX_LEARNING_RATE_MULTIPLIER`."""
    max_length: int | Auto = "auto"
    """Tokens each example is cut to, 16-32,768 (at most the model's context); auto: 512 for LLMs, 256 for encoders
    (`training.auto.MAX_LENGTH`). An LLM's example loses the middle of its context, never its answer."""
    lora_rank: int | Auto = "auto"
    """LLMs: the rank of the LoRA adapter, 1-1,024; auto: 8 (`training.auto.LORA_RANK`)."""
    lora_alpha: float | Auto = "auto"
    """LLMs: LoRA's alpha (the adapter's output is scaled by alpha / rank), > 0; auto: twice the rank, the scale the
    defaults were chosen at."""
    lora_dropout: float | Auto = "auto"
    """LLMs: dropout on the adapter's input while training, 0 to below 1; auto: 0."""
    lora_target_modules: list[str] | Auto = "auto"
    """LLMs: the layers that get an adapter, by name (`["q_proj", "v_proj"]`), or `["all-linear"]`; auto: the
    attention projections q/k/v/o where the model names them so, else every linear layer."""
    devices: int | Auto = "auto"
    """Data-parallel processes for this job, 1-64: one per GPU, or CPU processes sharing the cores; auto: the
    worker's default (`LOCALFT_DEVICES`, 1)."""

    def __post_init__(self) -> None:
        _check_int("n_epochs", self.n_epochs, 1, 50)
        _check_int("batch_size", self.batch_size, 1, 256)
        _check_int("max_length", self.max_length, 16, 32_768)
        lr = self.learning_rate_multiplier
        if lr != "auto" and (
            isinstance(lr, bool) or not isinstance(lr, int | float) or not 0 < lr <= MAX_LEARNING_RATE_MULTIPLIER
        ):
            raise InvalidRequestError(
                f"Invalid learning_rate_multiplier {lr!r}: use 'auto' or a number greater than 0 and at most "
                f"{MAX_LEARNING_RATE_MULTIPLIER:g}.",
                param="hyperparameters.learning_rate_multiplier",
            )
        _check_int("lora_rank", self.lora_rank, 1, 1024)
        _check_int("devices", self.devices, 1, 64)
        _check_positive("lora_alpha", self.lora_alpha)
        dropout = self.lora_dropout
        if dropout != "auto" and (
            isinstance(dropout, bool) or not isinstance(dropout, int | float) or not 0 <= dropout < 1
        ):
            raise InvalidRequestError(
                f"Invalid lora_dropout {dropout!r}: use 'auto' or a number from 0 to below 1.",
                param="hyperparameters.lora_dropout",
            )
        targets = self.lora_target_modules
        if targets != "auto" and (
            not isinstance(targets, list)
            or not 1 <= len(targets) <= 64
            or not all(isinstance(t, str) and t.strip() and len(t) <= 128 for t in targets)
        ):
            raise InvalidRequestError(
                f"Invalid lora_target_modules {targets!r}: use 'auto', a list of layer names such as "
                f'["q_proj", "v_proj"], or ["{ALL_LINEAR}"].',
                param="hyperparameters.lora_target_modules",
            )

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> Hyperparameters:
        raw = dict(raw or {})
        unknown = set(raw) - {*OPENAI_KEYS, *EXTENSION_KEYS}
        if unknown:
            name = sorted(unknown)[0]
            raise InvalidRequestError(
                f"Unknown hyperparameter {name!r}: use {', '.join(OPENAI_KEYS)}, or localft's "
                f"{', '.join(EXTENSION_KEYS)}.",
                param=f"hyperparameters.{name}",
            )
        if isinstance(raw.get("lora_target_modules"), str) and raw["lora_target_modules"] != "auto":
            raw["lora_target_modules"] = [raw["lora_target_modules"]]  # one name, or "all-linear", as peft takes it
        return cls(**{k: v for k, v in raw.items() if v is not None})

    def to_dict(self) -> dict[str, Any]:
        """OpenAI's three, and each extension only where it was given: a job that does not use them looks exactly
        like OpenAI's."""
        values = asdict(self)
        for key in EXTENSION_KEYS:
            if values[key] == "auto":
                del values[key]
        return values

    def lora_given(self) -> list[str]:
        """The LoRA hyperparameters this job set (the ones an encoder, fine-tuned in full, cannot take)."""
        return [key for key in LORA_KEYS if getattr(self, key) != "auto"]


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if value == "auto":
        return
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidRequestError(
            f"Invalid {name} {value!r}: use 'auto' or a whole number from {low} to {high}.",
            param=f"hyperparameters.{name}",
        )


def _check_positive(name: str, value: object) -> None:
    if value != "auto" and (isinstance(value, bool) or not isinstance(value, int | float) or not value > 0):
        raise InvalidRequestError(
            f"Invalid {name} {value!r}: use 'auto' or a number greater than 0.", param=f"hyperparameters.{name}"
        )
