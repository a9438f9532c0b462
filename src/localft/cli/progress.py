"""How a followed job shows on a terminal: a progress bar over steps whose speed comes from the events' own
timestamps, or plain event lines where stderr is not a terminal (logs, CI, tests).

tqdm's own rate divides the steps by the time between two updates. Events arrive in bursts (the CLI polls once a
second, and `jobs watch` on a running job first replays its history), so that rate reads as thousands of steps a
second on the first frame; the training's rate is what the server recorded when it logged each step.
"""

from __future__ import annotations

import sys
from typing import Any

import click
from tqdm import tqdm

from localft.cli.render import format_time

# Keys of a metrics event that are not classification metrics (see training/interfaces.py StepMetrics).
_TOKEN_METRICS = frozenset({"full_valid_loss", "full_valid_mean_token_accuracy"})
# The bar without tqdm's rate and remaining time: `StepRate` supplies both in the postfix.
BAR_FORMAT = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]"


class StepRate:
    """Steps per second between the first step seen and the latest, on the server's clock (event `created_at`)."""

    def __init__(self) -> None:
        self.first: tuple[int, int] | None = None
        self.last: tuple[int, int] | None = None

    def add(self, step: int, created_at: int) -> None:
        if self.first is None:
            self.first = (step, created_at)
        self.last = (step, created_at)

    def per_second(self) -> float | None:
        """None until the steps span at least a second of the server's time (timestamps are whole seconds)."""
        if self.first is None or self.last is None:
            return None
        steps, seconds = self.last[0] - self.first[0], self.last[1] - self.first[1]
        return steps / seconds if seconds >= 1 and steps > 0 else None

    def describe(self, total: int | None) -> str:
        rate = self.per_second()
        if rate is None or self.last is None:
            return ""
        speed = f"{rate:.2f} step/s" if rate >= 1 else f"{1 / rate:.2f} s/step"
        if not total:
            return speed
        left = max(0, total - self.last[0]) / rate
        return f"{speed}, {int(left // 60):02d}:{int(left % 60):02d} left"


class JobDisplay:
    """A progress bar over steps on a terminal; plain event lines otherwise."""

    def __init__(self, interactive: bool | None = None) -> None:
        self.interactive = sys.stderr.isatty() if interactive is None else interactive
        self.bar: tqdm[Any] | None = None
        self.rate = StepRate()

    def show(self, event: Any) -> None:
        data = event.data if isinstance(event.data, dict) else {}
        if event.type == "metrics" and "step" in data:
            self._metrics(event.message, data, event.created_at)
        else:
            self._write(f"{format_time(event.created_at)}  {event.message}")

    def _metrics(self, message: str, data: dict[str, Any], created_at: int) -> None:
        classification = {
            k.removeprefix("full_valid_"): v
            for k, v in data.items()
            if k.startswith("full_valid_") and k not in _TOKEN_METRICS and isinstance(v, int | float)
        }
        if self.interactive:
            step = int(data["step"])
            self.rate.add(step, created_at)
            if self.bar is None:
                # Starting at the first step seen, not 0: the steps before it were not watched being made.
                self.bar = tqdm(
                    total=data.get("total_steps"),
                    initial=step,
                    unit="step",
                    file=sys.stderr,
                    dynamic_ncols=True,
                    bar_format=BAR_FORMAT,
                )
            else:
                self.bar.update(step - self.bar.n)
            self.bar.set_postfix_str(self._postfix(data), refresh=True)
        else:
            self._write(message)
        if classification:
            shown = ", ".join(f"{k}={v:.3f}" for k, v in sorted(classification.items()))
            self._write(f"Epoch {data.get('epoch', '?')} validation: {shown}")

    def _postfix(self, data: dict[str, Any]) -> str:
        values = {"loss": data.get("train_loss"), "val_loss": data.get("valid_loss")}
        values["acc"] = data.get("valid_mean_token_accuracy") or data.get("train_mean_token_accuracy")
        parts = [f"{k}={v:.3f}" for k, v in values.items() if isinstance(v, int | float)]
        speed = self.rate.describe(data.get("total_steps"))
        return ", ".join([*parts, speed] if speed else parts)

    def _write(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(line, file=sys.stderr)
        else:
            click.echo(line, err=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
