"""CLI tables from rich: plain, aligned and right-trimmed off a terminal (what scripts and tests read), coloured
statuses on one."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from localft.cli.render import print_fields, print_table

ROWS = [
    {"id": "ftjob-a", "status": "succeeded", "trained_tokens": 1200},
    {"id": "ftjob-bbbbbb", "status": "failed", "trained_tokens": 35},
]


@click.command()
def show() -> None:
    print_table(ROWS, ("id", "status", "trained_tokens"))
    print_fields({"id": "ftjob-a", "status": "failed"})


def test_off_a_terminal_tables_are_plain_aligned_text(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    output = CliRunner().invoke(show).output
    assert "\x1b[" not in output
    assert output.splitlines() == [
        "ID            STATUS     TRAINED_TOKENS",
        "ftjob-a       succeeded            1200",  # numbers right-aligned
        "ftjob-bbbbbb  failed                 35",
        "id      ftjob-a",
        "status  failed",
    ]


def test_long_cells_are_never_wrapped_off_a_terminal() -> None:
    @click.command()
    def wide() -> None:
        print_table([{"message": "word " * 60}], ("message",))

    assert CliRunner().invoke(wide).output.splitlines()[1] == ("word " * 60).rstrip()


def test_statuses_are_coloured_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.delenv("NO_COLOR", raising=False)
    output = CliRunner().invoke(show).output
    assert "\x1b[32msucceeded" in output  # green
    assert "\x1b[1;31mfailed" in output  # bold red
