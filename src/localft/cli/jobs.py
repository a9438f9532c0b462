"""`localft jobs`: create, inspect, follow and control fine-tuning jobs."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click
import openai

from localft.cli.progress import JobDisplay
from localft.cli.render import (
    EXIT_JOB_CANCELLED,
    EXIT_JOB_FAILED,
    CliError,
    api_errors,
    base_url_option,
    emit_list,
    emit_object,
    emit_result,
    json_option,
    print_json,
)
from localft.client import connect
from localft.eval.curves import DEFAULT_SMOOTHING, RunCurves, plot_curves

JOB_COLUMNS = ("id", "model", "status", "fine_tuned_model", "created_at")
EVENT_COLUMNS = ("created_at", "level", "type", "message")
CHECKPOINT_COLUMNS = ("id", "step_number", "fine_tuned_model_checkpoint", "created_at")
TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
EXIT_INTERRUPTED = 130  # the shell's convention for a command stopped by Ctrl-C


@click.group()
def jobs() -> None:
    """Fine-tuning jobs: create, list, show, events, watch, plot, cancel, pause, resume, checkpoints.

    \b
    Example:
      localft jobs create --model smollm2-135m-instruct --training-file file-abc --watch
      localft jobs events ftjob-abc
    """


def hyperparameter_options(func: Any) -> Any:
    """`--n-epochs`, `--batch-size`, `--learning-rate-multiplier`, `--max-length`: each "auto" unless given."""
    func = click.option(
        "--max-length",
        type=click.IntRange(16, 32_768),
        default=None,
        help="Tokens each training example is cut to (a localft extension). Default: auto (512 LLM, 256 encoder).",
    )(func)
    func = click.option("--learning-rate-multiplier", type=float, default=None, help="Default: auto.")(func)
    func = click.option("--batch-size", type=click.IntRange(1, 256), default=None, help="Default: auto.")(func)
    return click.option("--n-epochs", type=click.IntRange(1, 50), default=None, help="Default: auto.")(func)


def scale_options(func: Any) -> Any:
    """localft's LoRA and device hyperparameters: `--lora-rank`, `--lora-alpha`, `--lora-dropout`,
    `--lora-target-modules`, `--devices`; each left out of the request unless given."""
    func = click.option(
        "--devices",
        type=click.IntRange(1, 64),
        default=None,
        help="Data-parallel processes, one per GPU (a localft extension). Default: the worker's (LOCALFT_DEVICES).",
    )(func)
    func = click.option(
        "--lora-target-modules",
        default=None,
        metavar="NAMES",
        help="LLMs: comma-separated layers to adapt, or all-linear (a localft extension). Default: q/k/v/o_proj.",
    )(func)
    func = click.option(
        "--lora-dropout", type=click.FloatRange(0, 1, max_open=True), default=None, help="LLMs. Default: 0."
    )(func)
    alpha = click.FloatRange(0, min_open=True)
    func = click.option("--lora-alpha", type=alpha, default=None, help="LLMs. Default: 2 x the rank.")(func)
    return click.option(
        "--lora-rank", type=click.IntRange(1, 1024), default=None, help="LLMs: the LoRA rank. Default: 8."
    )(func)


def scale_hyperparameters(
    lora_rank: int | None,
    lora_alpha: float | None,
    lora_dropout: float | None,
    lora_target_modules: str | None,
    devices: int | None,
) -> dict[str, Any]:
    """The `scale_options` a command was given, as hyperparameters."""
    targets = [name.strip() for name in lora_target_modules.split(",") if name.strip()] if lora_target_modules else None
    given = {
        "lora_rank": lora_rank,
        "lora_alpha": lora_alpha,
        "lora_dropout": lora_dropout,
        "lora_target_modules": targets,
        "devices": devices,
    }
    return {key: value for key, value in given.items() if value is not None}


def hyperparameters(
    n_epochs: int | None, batch_size: int | None, lr: float | None, max_length: int | None = None, **scale: Any
) -> dict[str, Any]:
    """The job's hyperparameters; localft's extensions (`max_length`, `scale_options`) only when given, so the
    request stays OpenAI's otherwise."""
    chosen: dict[str, Any] = {
        "n_epochs": n_epochs if n_epochs is not None else "auto",
        "batch_size": batch_size if batch_size is not None else "auto",
        "learning_rate_multiplier": lr if lr is not None else "auto",
    }
    if max_length is not None:
        chosen["max_length"] = max_length
    if scale:
        chosen.update(scale_hyperparameters(**scale))
    return chosen


def _metadata(pairs: tuple[str, ...]) -> dict[str, str] | None:
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--metadata")
        out[key] = value
    return out or None


@jobs.command()
@click.option(
    "--model",
    required=True,
    help="Base model: a catalog name, an OpenAI alias or a local folder (not an ft: model: start from its base).",
)
@click.option("--training-file", required=True, metavar="FILE_ID")
@click.option("--validation-file", default=None, metavar="FILE_ID")
@hyperparameter_options
@scale_options
@click.option("--suffix", default=None, help="Up to 64 characters in the fine-tuned model's name.")
@click.option("--seed", type=int, default=None)
@click.option("--metadata", "metadata_pairs", multiple=True, metavar="KEY=VALUE")
@click.option("--watch", is_flag=True, help="Follow the job until it finishes.")
@base_url_option
@json_option
def create(
    model: str,
    training_file: str,
    validation_file: str | None,
    n_epochs: int | None,
    batch_size: int | None,
    learning_rate_multiplier: float | None,
    max_length: int | None,
    suffix: str | None,
    seed: int | None,
    metadata_pairs: tuple[str, ...],
    watch: bool,
    base_url: str | None,
    as_json: bool,
    **scale: Any,
) -> None:
    """Create a fine-tuning job from uploaded file ids."""
    params: dict[str, Any] = {
        "model": model,
        "training_file": training_file,
        "method": {
            "type": "supervised",
            "supervised": {
                "hyperparameters": hyperparameters(n_epochs, batch_size, learning_rate_multiplier, max_length, **scale)
            },
        },
    }
    optional = {
        "validation_file": validation_file,
        "suffix": suffix,
        "seed": seed,
        "metadata": _metadata(metadata_pairs),
    }
    params.update({k: v for k, v in optional.items() if v is not None})
    with connect(base_url) as conn, api_errors():
        job = conn.client.fine_tuning.jobs.create(**params)
        if not watch:
            emit_result(job, as_json, job.id)
            return
        click.echo(f"Created {job.id}", err=True)
        finished = watch_to_end(conn.client, job.id)
    finish(finished, as_json)


@jobs.command("list")
@click.option("--limit", type=click.IntRange(1, 100), default=20, show_default=True)
@base_url_option
@json_option
def list_jobs(limit: int, base_url: str | None, as_json: bool) -> None:
    """List fine-tuning jobs, newest first."""
    with connect(base_url) as conn, api_errors():
        items = list(conn.client.fine_tuning.jobs.list(limit=limit).data)
    emit_list(items, JOB_COLUMNS, as_json)


@jobs.command()
@click.argument("job_id")
@base_url_option
@json_option
def show(job_id: str, base_url: str | None, as_json: bool) -> None:
    """Show one job."""
    with connect(base_url) as conn, api_errors():
        emit_object(conn.client.fine_tuning.jobs.retrieve(job_id), as_json)


@jobs.command()
@click.argument("job_id")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@base_url_option
@json_option
def events(job_id: str, limit: int, base_url: str | None, as_json: bool) -> None:
    """A job's events, oldest first (the API lists them newest first)."""
    with connect(base_url) as conn, api_errors():
        items = list(conn.client.fine_tuning.jobs.list_events(job_id, limit=limit).data)
    items.reverse()
    emit_list(items, EVENT_COLUMNS, as_json)


@jobs.command()
@click.argument("job_id")
@base_url_option
@json_option
def checkpoints(job_id: str, base_url: str | None, as_json: bool) -> None:
    """A job's checkpoints (each usable as a model)."""
    with connect(base_url) as conn, api_errors():
        items = list(conn.client.fine_tuning.jobs.checkpoints.list(job_id).data)
    emit_list(items, CHECKPOINT_COLUMNS, as_json)


@jobs.command()
@click.argument("job_id")
@base_url_option
@json_option
def watch(job_id: str, base_url: str | None, as_json: bool) -> None:
    """Follow a job live until it finishes (Ctrl-C asks whether to cancel it)."""
    with connect(base_url) as conn, api_errors():
        job = watch_to_end(conn.client, job_id)
    finish(job, as_json)


@jobs.command()
@click.argument("job_ids", nargs=-1, required=True, metavar="JOB...")
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=Path("curves.png"), show_default=True
)
@click.option(
    "--smoothing",
    type=click.FloatRange(0, 1, max_open=True),
    default=DEFAULT_SMOOTHING,
    show_default=True,
    help="Moving-average weight for the per-step training loss (0: as measured).",
)
@base_url_option
def plot(job_ids: tuple[str, ...], output: Path, smoothing: float, base_url: str | None) -> None:
    """Write the loss and validation-metric curves of one or more jobs, overlaid, as a PNG.

    \b
    Example:
      localft jobs plot ftjob-abc ftjob-def -o curves.png
    """
    with connect(base_url) as conn, api_errors():
        runs = [job_curves(conn.client, job_id, label_of(conn.client, job_id)) for job_id in job_ids]
    write_curves(runs, output, smoothing)
    click.echo(f"Wrote {output} ({len(runs)} job{'s' if len(runs) > 1 else ''})")


def label_of(client: openai.OpenAI, job_id: str) -> str:
    """A run's name in a legend: its suffix and the end of its id, or the id."""
    # `user_provided_suffix` is in OpenAI's responses but not in every SDK version's model of them.
    suffix = getattr(client.fine_tuning.jobs.retrieve(job_id), "user_provided_suffix", None)
    return f"{suffix} ({job_id[-6:]})" if suffix else job_id


def job_curves(client: openai.OpenAI, job_id: str, label: str) -> RunCurves:
    """All of a job's metrics events, paged, as curves."""
    data: list[dict[str, Any] | None] = []
    page = client.fine_tuning.jobs.list_events(job_id, limit=1000)
    while True:
        data.extend(event.data for event in page.data if event.type == "metrics" and isinstance(event.data, dict))
        if not page.has_more or not page.data:
            return RunCurves.from_events(label, data)
        page = client.fine_tuning.jobs.list_events(job_id, limit=1000, after=page.data[-1].id)


def write_curves(runs: list[RunCurves], output: Path, smoothing: float = DEFAULT_SMOOTHING) -> Path:
    if not any(run.rows for run in runs):
        raise CliError("None of these jobs has reported a training step yet: nothing to plot.")
    output.parent.mkdir(parents=True, exist_ok=True)
    return plot_curves(runs, output, smoothing=smoothing)


def _control(verb: str) -> click.Command:
    @click.command(name=verb, help=f"{verb.capitalize()} a job.")
    @click.argument("job_id")
    @base_url_option
    @json_option
    def command(job_id: str, base_url: str | None, as_json: bool) -> None:
        with connect(base_url) as conn, api_errors():
            job = getattr(conn.client.fine_tuning.jobs, verb)(job_id)
        emit_result(job, as_json, f"{job.id}: {job.status}")

    return command


for _verb in ("cancel", "pause", "resume"):
    jobs.add_command(_control(_verb))


def watch_to_end(client: openai.OpenAI, job_id: str) -> Any:
    """Follow a job; on Ctrl-C ask whether to cancel it or leave it running, and exit accordingly."""
    try:
        return follow_job(client, job_id)
    except KeyboardInterrupt:
        click.echo("", err=True)
        if click.confirm(f"Cancel {job_id}?", default=False, err=True):
            job = client.fine_tuning.jobs.cancel(job_id)
            raise CliError(f"Cancelled {job.id}.", EXIT_JOB_CANCELLED) from None
        raise CliError(
            f"Left {job_id} running. Follow it again with: localft jobs watch {job_id}", EXIT_INTERRUPTED
        ) from None


def finish(job: Any, as_json: bool) -> None:
    """Print the finished job and exit with the code matching its status."""
    if as_json:
        print_json(job)
    if job.status == "failed":
        message = job.error.message if job.error is not None else "no error message"
        raise CliError(f"Job {job.id} failed: {message}", EXIT_JOB_FAILED)
    if job.status == "cancelled":
        raise CliError(f"Job {job.id} was cancelled.", EXIT_JOB_CANCELLED)
    if not as_json:
        click.echo(f"Job {job.id} {job.status}: {job.fine_tuned_model}")


def new_events(client: openai.OpenAI, job_id: str, seen: set[str]) -> list[Any]:
    """Events not seen yet, oldest first. The API pages newest first, so read pages until a known event."""
    fresh: list[Any] = []
    page = client.fine_tuning.jobs.list_events(job_id, limit=100)
    while True:
        unseen = [event for event in page.data if event.id not in seen]
        fresh.extend(unseen)
        if len(unseen) < len(page.data) or not page.has_more or not page.data:
            break
        page = client.fine_tuning.jobs.list_events(job_id, limit=100, after=page.data[-1].id)
    seen.update(event.id for event in fresh)
    fresh.reverse()
    return fresh


def follow_job(client: openai.OpenAI, job_id: str, poll_seconds: float = 1.0) -> Any:
    """Show a job's events as they arrive until it reaches a final status; return the final job."""
    display = JobDisplay()
    seen: set[str] = set()
    try:
        while True:
            job = client.fine_tuning.jobs.retrieve(job_id)
            # Events are read after the status so the final events of a finished job are never missed.
            for event in new_events(client, job_id, seen):
                display.show(event)
            if job.status in TERMINAL:
                return job
            time.sleep(poll_seconds)
    finally:
        display.close()
