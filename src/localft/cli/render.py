"""What the resource verbs share: tables for humans, `--json` for scripts, exit codes, API errors as one line.

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

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

import click
import openai

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


def print_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    """A left-aligned text table; an empty list prints a note instead of a bare header."""
    if not rows:
        click.echo("(none)")
        return
    cells = [[_cell(row.get(col)) for col in columns] for row in rows]
    widths = [max(len(col), *(len(r[i]) for r in cells)) for i, col in enumerate(columns)]
    click.echo("  ".join(col.upper().ljust(w) for col, w in zip(columns, widths, strict=True)).rstrip())
    for r in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


def print_fields(data: dict[str, Any]) -> None:
    """One object as aligned `key  value` lines."""
    width = max((len(k) for k in data), default=0)
    for key, value in data.items():
        click.echo(f"{key.ljust(width)}  {_cell(value)}")


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
