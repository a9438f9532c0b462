"""The progress bar of a followed job: its speed comes from the events' timestamps, never from how fast the CLI
happened to read a burst of them (the first frame once read 10155.70 step/s)."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from typing import Any

import pytest

from localft.cli.progress import JobDisplay, StepRate


@dataclass
class Event:
    created_at: int
    data: dict[str, Any] = field(default_factory=dict)
    type: str = "metrics"
    message: str = ""


def step(n: int, at: int, total: int = 100) -> Event:
    return Event(at, {"step": n, "total_steps": total, "train_loss": 1.0 / n}, message=f"Step {n}/{total}")


def frames(stderr: io.StringIO) -> list[str]:
    return [f for f in re.split(r"[\r\n]", stderr.getvalue()) if "|" in f]


def test_first_frame_shows_no_rate_and_later_ones_the_servers_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    stderr = io.StringIO()
    monkeypatch.setattr("sys.stderr", stderr)
    display = JobDisplay(interactive=True)
    # A burst: three steps read within microseconds, logged by the server 2 s apart.
    for event in (step(1, 1000), step(2, 1002), step(3, 1004)):
        display.show(event)
    display.close()
    shown = frames(stderr)
    assert "step/s" not in shown[0] and "s/step" not in shown[0]
    assert "2.00 s/step" in shown[-1] and "03:14 left" in shown[-1]  # 97 steps at 2 s each
    assert not any(re.search(r"\d{3,}\.\d+ ?step/s", frame) for frame in shown)
    assert " 3/100 " in shown[-1]


def test_step_rate_needs_a_second_of_server_time() -> None:
    rate = StepRate()
    rate.add(5, 100)
    rate.add(6, 100)
    assert rate.per_second() is None and rate.describe(10) == ""
    rate.add(25, 102)
    assert rate.per_second() == 10.0
    assert rate.describe(125) == "10.00 step/s, 00:10 left"


def test_plain_lines_where_stderr_is_not_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    display = JobDisplay(interactive=False)
    display.show(step(1, 1000))
    display.show(Event(1001, type="message", message="Checkpoint created at step 1"))
    display.close()
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "Step 1/100" and lines[1].endswith("  Checkpoint created at step 1")
