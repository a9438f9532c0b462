"""`localft serve`: the OpenAI-compatible server, with its embedded worker, on this machine."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import click

from localft.jobs.worker import DEFAULT_LEASE_SECONDS
from localft.settings import EXECUTOR_CHOICES, Settings


@click.command()
@click.option("--host", default=None, help="Interface to bind [env LOCALFT_HOST; default 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Port [env LOCALFT_PORT; default 8000].")
@click.option("--home", type=click.Path(path_type=Path), default=None, help="Data folder [env LOCALFT_HOME].")
@click.option("--database-url", default=None, help="SQLAlchemy URL [env LOCALFT_DATABASE_URL; default SQLite].")
@click.option(
    "--worker/--no-worker",
    "embedded_worker",
    default=None,
    help="Run training jobs in this process [env LOCALFT_EMBEDDED_WORKER; default on]. "
    "With --no-worker, start `localft worker` processes on the same database.",
)
@click.option(
    "--lease-seconds",
    type=float,
    default=DEFAULT_LEASE_SECONDS,
    show_default=True,
    help="How long a job stays with a worker that stopped sending heartbeats before another takes it over.",
)
@click.option(
    "--executor",
    type=click.Choice(EXECUTOR_CHOICES),
    default=None,
    help="Who runs queued jobs [env LOCALFT_EXECUTOR; default embedded]: the worker thread here (and "
    "`localft worker` processes), or `ray`: one task per job on the Ray cluster at RAY_ADDRESS.",
)
@click.option("--log-level", default="info", show_default=True, help="uvicorn log level.")
def serve(
    host: str | None,
    port: int | None,
    home: Path | None,
    database_url: str | None,
    embedded_worker: bool | None,
    executor: str | None,
    lease_seconds: float,
    log_level: str,
) -> None:
    """Start the server; point the openai SDK at it with base_url="http://127.0.0.1:8000/v1".

    \b
    Example:
      localft serve
      LOCALFT_API_KEYS=secret localft serve --host 0.0.0.0 --port 8080
      RAY_ADDRESS=head-node:6379 localft serve --executor ray --database-url postgresql+psycopg://...
    """
    from localft.api.auth import KeyTable
    from localft.api.server import exposure_warning
    from localft.api.server import serve as run_server
    from localft.devices import DeviceError, describe
    from localft.jobs.data_folder import DataFolderMismatch

    overrides = {
        "host": host,
        "port": port,
        "home": home,
        "database_url": database_url,
        "embedded_worker": embedded_worker,
        "executor": executor,
    }
    settings = Settings.from_env(**{k: v for k, v in overrides.items() if v is not None})
    try:
        KeyTable.from_settings(settings)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    warning = exposure_warning(settings)
    if warning:
        click.secho(warning, fg="yellow", err=True)
    try:
        compute = describe(settings.device)
    except DeviceError as exc:
        raise click.ClickException(exc.message) from None
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if settings.executor == "ray":
        workers = "jobs run on the Ray cluster at " + (os.environ.get("RAY_ADDRESS") or "a new local Ray instance")
    elif settings.embedded_worker:
        workers = "embedded worker"
    else:
        workers = "no embedded worker (run `localft worker`)"
    click.echo(
        f"localft: data in {settings.home.resolve()}, {settings.db_url.split(':', 1)[0]} database, {workers}; "
        f"computing on {compute.summary()}; default base model {_default_model_note()}; "
        f"OpenAI base_url http://{settings.host}:{settings.port}/v1",
        err=True,
    )
    try:
        run_server(settings, lease_seconds=lease_seconds, log_level=log_level)
    except DataFolderMismatch as exc:
        raise click.ClickException(exc.message) from None


def _default_model_note() -> str:
    from localft.base_models import DEFAULT_BASE_MODEL, get_spec, is_installed

    spec = get_spec(DEFAULT_BASE_MODEL)
    installed = spec is not None and is_installed(spec)
    return f"{DEFAULT_BASE_MODEL} ({'installed' if installed else 'not installed: run `make setup`'})"
