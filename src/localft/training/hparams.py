"""Hyperparameters as OpenAI accepts them, plus localft's `max_length`: each `"auto"` or a value, validated on
construction."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from localft.errors import InvalidRequestError

Auto = Literal["auto"]
MAX_LEARNING_RATE_MULTIPLIER = 100.0
"""localft's own bound (OpenAI documents only "> 0"): far past where any run here still learns, and well short of
the 1e308 that trained a model to NaN. Training also fails a job whose loss stops being finite (`training.loop`)."""


@dataclass(frozen=True)
class Hyperparameters:
    """The three knobs of OpenAI's supervised method, and `max_length` (a localft extension). `"auto"` is resolved by
    the engine from the data and the model."""

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

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> Hyperparameters:
        raw = dict(raw or {})
        unknown = set(raw) - {"n_epochs", "batch_size", "learning_rate_multiplier", "max_length"}
        if unknown:
            name = sorted(unknown)[0]
            raise InvalidRequestError(
                f"Unknown hyperparameter {name!r}: use n_epochs, batch_size, learning_rate_multiplier or max_length.",
                param=f"hyperparameters.{name}",
            )
        return cls(**{k: v for k, v in raw.items() if v is not None})

    def to_dict(self) -> dict[str, Any]:
        """OpenAI's three, and `max_length` only where it was given: a job that does not use the extension looks
        exactly like OpenAI's."""
        values = asdict(self)
        if self.max_length == "auto":
            del values["max_length"]
        return values


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if value == "auto":
        return
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidRequestError(
            f"Invalid {name} {value!r}: use 'auto' or a whole number from {low} to {high}.",
            param=f"hyperparameters.{name}",
        )
