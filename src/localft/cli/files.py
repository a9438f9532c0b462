"""`localft files`: upload, list, show, download and delete files on a server."""

from __future__ import annotations

import base64
import binascii
import sys
from pathlib import Path

import click

from localft.cli.render import (
    api_errors,
    base_url_option,
    emit_list,
    emit_object,
    emit_result,
    json_option,
)
from localft.client import connect

FILE_COLUMNS = ("id", "filename", "purpose", "bytes", "created_at", "status")
PURPOSES = ("fine-tune", "fine-tune-results", "evals", "batch", "assistants", "user_data", "vision")


@click.group()
def files() -> None:
    """Files on the server (training data, result files, evaluation reports).

    \b
    Example:
      localft files upload train.jsonl
      localft files list --purpose fine-tune
    """


@files.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--purpose", type=click.Choice(PURPOSES), default="fine-tune", show_default=True)
@base_url_option
@json_option
def upload(path: Path, purpose: str, base_url: str | None, as_json: bool) -> None:
    """Upload PATH and print its file id."""
    with connect(base_url) as conn, api_errors(), path.open("rb") as fh:
        uploaded = conn.client.files.create(file=(path.name, fh), purpose=purpose)  # type: ignore[arg-type]
    emit_result(uploaded, as_json, uploaded.id)


@files.command("list")
@click.option("--purpose", default=None, help="Only files with this purpose.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True)
@base_url_option
@json_option
def list_files(purpose: str | None, limit: int, base_url: str | None, as_json: bool) -> None:
    """List files, newest first."""
    with connect(base_url) as conn, api_errors():
        kwargs: dict[str, object] = {"limit": limit}
        if purpose:
            kwargs["purpose"] = purpose
        page = conn.client.files.list(**kwargs)  # type: ignore[arg-type]
        items = list(page.data)
    emit_list(items, FILE_COLUMNS, as_json)


@files.command()
@click.argument("file_id")
@base_url_option
@json_option
def show(file_id: str, base_url: str | None, as_json: bool) -> None:
    """Show one file's details."""
    with connect(base_url) as conn, api_errors():
        emit_object(conn.client.files.retrieve(file_id), as_json)


@files.command()
@click.argument("file_id")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write here (default: stdout).")
@click.option("--raw", is_flag=True, help="Keep result files base64-encoded, as OpenAI's API serves them.")
@base_url_option
def download(file_id: str, output: Path | None, raw: bool, base_url: str | None) -> None:
    """Download a file's content (result files are decoded from OpenAI's base64 unless --raw)."""
    with connect(base_url) as conn, api_errors():
        meta = conn.client.files.retrieve(file_id)
        content = conn.client.files.content(file_id).read()
    if meta.purpose == "fine-tune-results" and not raw:
        content = _maybe_base64(content)
    if output is None:
        sys.stdout.buffer.write(content)
        sys.stdout.buffer.flush()
    else:
        output.write_bytes(content)
        click.echo(f"Wrote {len(content)} bytes to {output}", err=True)


@files.command()
@click.argument("file_ids", nargs=-1, required=True)
@base_url_option
@json_option
def rm(file_ids: tuple[str, ...], base_url: str | None, as_json: bool) -> None:
    """Delete one or more files."""
    deleted = []
    with connect(base_url) as conn, api_errors():
        for file_id in file_ids:
            deleted.append(conn.client.files.delete(file_id))
    emit_result(deleted, as_json, *(f"Deleted {item.id}" for item in deleted))


def _maybe_base64(content: bytes) -> bytes:
    """OpenAI serves result CSVs base64-encoded; a server that sends plain CSV is left alone."""
    try:
        return base64.b64decode(content, validate=True)
    except (binascii.Error, ValueError):
        return content
