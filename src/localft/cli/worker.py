"""`localft worker`: a training worker process that takes jobs from the server's database; `localft workers`: the
live ones, as the server sees them."""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from types import FrameType

import click

from localft.cli.render import api_errors, base_url_option, emit_list, json_option
from localft.client import connect
from localft.jobs.worker import DEFAULT_LEASE_SECONDS
from localft.settings import Settings

WORKER_COLUMNS = ("id", "job_id", "started_at", "last_seen_at")
EXIT_WRONG_FOLDER = 2


@click.command()
@click.option("--home", type=click.Path(path_type=Path), default=None, help="Data folder [env LOCALFT_HOME].")
@click.option("--database-url", default=None, help="SQLAlchemy URL [env LOCALFT_DATABASE_URL; default SQLite].")
@click.option(
    "--lease-seconds",
    type=float,
    default=DEFAULT_LEASE_SECONDS,
    show_default=True,
    help="Heartbeat lease: a job of a worker silent this long is taken over by another.",
)
@click.option("--poll-interval", type=float, default=1.0, show_default=True, help="Seconds between queue checks.")
@click.option("--once", is_flag=True, help="Run at most one job, then exit.")
def worker(home: Path | None, database_url: str | None, lease_seconds: float, poll_interval: float, once: bool) -> None:
    """Run queued fine-tuning jobs, one at a time, from the same database and data folder as the server.

    Start as many as the machine can train at once; each job goes to exactly one worker. Stop with Ctrl-C or
    SIGTERM: a running job goes back to the queue and resumes from its last checkpoint. A worker refuses to start
    when its data folder is not the server's (the folder the server marked in the database).

    \b
    Example:
      localft serve --no-worker &
      localft worker
    """
    from localft.base_models import use_auto_pull, use_threads
    from localft.devices import DeviceError, describe
    from localft.jobs.data_folder import DataFolderMismatch, check_data_folder
    from localft.jobs.store import Store
    from localft.jobs.worker import Worker

    overrides = {"home": home, "database_url": database_url}
    settings = Settings.from_env(**{k: v for k, v in overrides.items() if v is not None})
    try:
        compute = describe(settings.device)
    except DeviceError as exc:
        raise click.ClickException(exc.message) from None
    settings.ensure_dirs()
    use_threads(settings.threads)
    use_auto_pull(settings.auto_pull)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    store = Store.open(settings.db_url)
    try:
        check_data_folder(store, settings.home)
    except DataFolderMismatch as exc:
        store.close()
        click.echo(f"localft worker: not starting. {exc.message}", err=True)
        raise SystemExit(EXIT_WRONG_FOLDER) from None
    runner = Worker(settings, store, lease_seconds=lease_seconds, poll_interval=poll_interval)

    def _stop(signum: int, _frame: FrameType | None) -> None:
        click.echo(f"localft worker: {signal.Signals(signum).name}, stopping after the current step", err=True)
        runner.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    click.echo(
        f"localft worker {runner.worker_id}: data in {settings.home.resolve()}, computing on {compute.summary()}",
        err=True,
    )
    try:
        if once:
            runner.run_once()
        else:
            runner.run_forever()
    finally:
        store.close()


@click.command()
@base_url_option
@json_option
def workers(base_url: str | None, as_json: bool) -> None:
    """List the live workers (the server's embedded one and every `localft worker`), and the job each runs.

    \b
    Example:
      localft workers
    """
    with connect(base_url) as conn, api_errors():
        listed = conn.client.get("/workers", cast_to=object)
    items = listed.get("data", []) if isinstance(listed, dict) else []
    emit_list(items, WORKER_COLUMNS, as_json)
