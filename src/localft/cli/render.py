"""What the resource verbs share: tables for humans, `--json` for scripts, exit codes, API errors as one line.

Tables and colour come from `rich`. On a terminal, statuses and levels are coloured and tables fit the window;
off one (a pipe, a file, a test), rich prints no colour codes and each line is as long as the table needs, with
two spaces between columns and upper-case headers, so `awk`/`split()` keep working.

Exit codes scripts can rely on:

    0  success
    1  the server refused the request (its message is printed), or another runtime error
    2  usage error (bad flags; click's own code)
    3  the data failed validation (the report is printed)
    4  the fine-tuning job failed
    5  the fine-tuning job was cancelled
    6  no server answers at the base URL
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

import click
import openai
from rich.console import Console
from rich.table import Table
from rich.text import Text

from localft.client import api_error_message

EXIT_API_ERROR = 1
EXIT_INVALID_DATA = 3
EXIT_JOB_FAILED = 4
EXIT_JOB_CANCELLED = 5
EXIT_UNREACHABLE = 6

F = TypeVar("F", bound=Callable[..., Any])


class CliError(click.ClickException):
    """A clean exit with a message and a chosen exit code (no traceback)."""

    def __init__(self, message: str, exit_code: int = EXIT_API_ERROR) -> None:
        super().__init__(message)
        self.exit_code = exit_code  # type: ignore[misc]  # click declares it a ClassVar; per instance is fine


@contextmanager
def api_errors() -> Iterator[None]:
    """Turn SDK exceptions into `CliError`s carrying the server's message."""
    try:
        yield
    except openai.APIConnectionError as exc:
        raise CliError(api_error_message(exc), EXIT_UNREACHABLE) from exc
    except openai.OpenAIError as exc:
        raise CliError(api_error_message(exc), EXIT_API_ERROR) from exc


def base_url_option(func: F) -> F:
    """`--base-url`, shared by every verb that talks to a server."""
    return click.option(
        "--base-url",
        envvar="LOCALFT_BASE_URL",
        default=None,
        metavar="URL",
        help="Server to talk to (env LOCALFT_BASE_URL; default http://127.0.0.1:8000/v1).",
    )(func)


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts instead of a table.")(func)


def to_dict(obj: Any) -> Any:
    """SDK objects (pydantic) as plain JSON-able data; other values unchanged."""
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json", exclude_unset=False)
    return obj


def print_json(data: Any) -> None:
    click.echo(json.dumps(to_dict(data), indent=2, ensure_ascii=False, default=str))


def format_time(timestamp: int | None) -> str:
    if not timestamp:
        return "-"
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    return str(value)


# Colours for the values people scan a table for; anything else prints in the default colour.
STYLES = {
    "status": {
        "succeeded": "green",
        "failed": "bold red",
        "cancelled": "yellow",
        "running": "cyan",
        "queued": "blue",
        "validating_files": "blue",
        "paused": "magenta",
    },
    "level": {"error": "bold red", "warn": "yellow"},
}


def table(columns: Sequence[str], rows: Sequence[Sequence[Any]], *, numeric: Sequence[str] = ()) -> Table:
    """A borderless rich table: upper-case headers, two spaces between columns, `numeric` columns right-aligned."""
    grid = Table(box=None, pad_edge=False, show_edge=False, header_style="bold", padding=(0, 1))
    for col in columns:
        grid.add_column(col.upper(), justify="right" if col in numeric else "left", overflow="fold")
    for row in rows:
        grid.add_row(*(_styled(col, value) for col, value in zip(columns, row, strict=True)))
    return grid


def _styled(column: str, value: Any) -> Text:
    text = _cell(value)
    return Text(text, style=STYLES.get(column, {}).get(text, ""))


def print_rich(renderable: Any, stderr: bool = False) -> None:
    """Print a rich table: in colour to a terminal; as plain lines, unwrapped and right-trimmed, anywhere else."""
    # Made per call, not once: click's test runner swaps sys.stdout, and a kept console would write to the old one.
    out = Console(stderr=stderr, highlight=False)
    if out.is_terminal:
        out.print(renderable)
        return
    buffer = io.StringIO()
    Console(file=buffer, width=1_000_000, color_system=None, highlight=False).print(renderable, crop=False)
    text = buffer.getvalue()
    click.echo("\n".join(line.rstrip() for line in text.splitlines()), err=stderr)


def print_table(
    rows: Sequence[dict[str, Any]], columns: Sequence[str], *, numeric: Sequence[str] | None = None
) -> None:
    """A table of `columns`; an empty list prints a note instead of a bare header. Columns holding only numbers
    are right-aligned unless `numeric` names the ones to align."""
    if not rows:
        click.echo("(none)")
        return
    if numeric is None:
        numeric = [col for col in columns if all(_is_number(row.get(col)) for row in rows)]
    print_rich(table(columns, [[row.get(col) for col in columns] for row in rows], numeric=numeric))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def print_fields(data: dict[str, Any]) -> None:
    """One object as aligned `key  value` lines, keys in bold."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    for key, value in data.items():
        grid.add_row(key, _styled(key, value))
    print_rich(grid)


TIME_FIELDS = ("created_at", "finished_at", "created", "estimated_finish", "started_at", "last_seen_at")
"""Unix timestamps in the API's objects, shown as UTC dates in tables and field lists (JSON keeps the numbers)."""


def _with_dates(data: dict[str, Any]) -> dict[str, Any]:
    for key in TIME_FIELDS:
        if isinstance(data.get(key), int):
            data[key] = format_time(data[key])
    return data


def emit_list(items: Sequence[Any], columns: Sequence[str], as_json: bool) -> None:
    """A list of SDK objects (or dicts): a JSON array, or a table of `columns` with timestamps as dates."""
    data = [to_dict(item) for item in items]
    if as_json:
        print_json(data)
        return
    print_table([_with_dates(row) for row in data], columns)


def emit_object(obj: Any, as_json: bool) -> None:
    """One SDK object: JSON, or aligned `key  value` lines with timestamps as dates."""
    data = to_dict(obj)
    if as_json:
        print_json(data)
        return
    print_fields(_with_dates(data))


def emit_result(result: Any, as_json: bool, *lines: str) -> None:
    """What a command did: `result` as JSON for scripts, or the short confirmation `lines` for humans."""
    if as_json:
        print_json(result)
        return
    for line in lines:
        click.echo(line)
