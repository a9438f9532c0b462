"""`localft train`: from a CSV (or prepared JSONL) to a fine-tuned model in one command, with live progress.

Steps: prepare (the same code and flags as `localft prepare`), validate (the same checks the server runs),
upload, create the job, follow it, then print the model id, a snippet that calls it and a short evaluation on
the held-out `test` split when `--split` made one. With no server at the default URL, the embedded server runs
for the duration of the command (its data lives in LOCALFT_HOME, so `localft serve` later serves the model).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import openai

from localft.base_models import AUTO
from localft.cli.data import optional_prepare_options
from localft.cli.jobs import (
    EXIT_INTERRUPTED,
    hyperparameter_options,
    hyperparameters,
    job_curves,
    scale_options,
    watch_to_end,
    write_curves,
)
from localft.cli.render import (
    EXIT_INVALID_DATA,
    EXIT_JOB_CANCELLED,
    EXIT_JOB_FAILED,
    CliError,
    api_errors,
    base_url_option,
    print_json,
)
from localft.client import DEFAULT_BASE_URL, connect
from localft.data.prepare import PrepareOptions, prepare_file
from localft.data.summary import validation_summary
from localft.data.validate import validate_file
from localft.errors import InvalidRequestError, LocalftError


@click.command()
@click.argument("data", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@optional_prepare_options
@click.option(
    "--model",
    default=AUTO,
    show_default=True,
    help="Base model: name, alias or folder; `auto` scores classifiers on the training data and trains the best.",
)
@click.option("--validation-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None)
@click.option("--test-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None)
@hyperparameter_options
@scale_options
@click.option("--suffix", default=None, help="Part of the fine-tuned model's name.")
@click.option(
    "-o",
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the prepared splits go [DATA-prepared].",
)
@click.option("--eval/--no-eval", "run_eval", default=True, show_default=True, help="Score the test split after.")
@base_url_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary at the end (progress stays on stderr).")
def train(
    data: Path,
    prepare_opts: PrepareOptions | None,
    model: str,
    validation_file: Path | None,
    test_file: Path | None,
    n_epochs: int | None,
    batch_size: int | None,
    learning_rate_multiplier: float | None,
    max_length: int | None,
    suffix: str | None,
    out_dir: Path | None,
    run_eval: bool,
    base_url: str | None,
    as_json: bool,
    **scale: Any,
) -> None:
    """Fine-tune MODEL on DATA: a CSV/TSV/JSONL table (with --text-col/--label-col) or prepared chat JSONL.

    \b
    Example (airline tweets, 200 training and 100 test tweets, equal classes; `auto` picks the model):
      localft train Tweets.csv --text-col text --label-col airline_sentiment \\
        --balanced --split train=200,test=100
    """
    splits = _prepare(data, prepare_opts, out_dir) if prepare_opts else {"train": data}
    if validation_file:
        splits["validation"] = validation_file
    if test_file:
        splits["test"] = test_file
    if "train" not in splits:
        raise click.UsageError("--split must include a 'train' split, e.g. --split train=0.8,test=0.2")
    for name in ("train", "validation"):
        if name in splits:
            _validate(splits[name], name)
    seed = prepare_opts.seed if prepare_opts else None
    with connect(base_url, start_if_down=True) as conn, api_errors():
        if conn.embedded:
            click.echo(f"No server at {DEFAULT_BASE_URL}: running an embedded one for this command.", err=True)
        chosen = hyperparameters(n_epochs, batch_size, learning_rate_multiplier, max_length, **scale)
        job = _start_job(conn.client, splits, model, chosen, suffix, seed)
        click.echo(f"Created {job.id} ({model}); follow it elsewhere with: localft jobs watch {job.id}", err=True)
        try:
            job = watch_to_end(conn.client, job.id)
        except CliError as exc:
            if conn.embedded and exc.exit_code == EXIT_INTERRUPTED:
                click.echo(
                    "The embedded server stops with this command; the job resumes when a server "
                    "starts again on this data folder (`localft serve`).",
                    err=True,
                )
            raise
        curves = _save_curves(conn.client, job, splits["train"].parent)
        if job.status != "succeeded":
            _raise_for(job)
        report = _evaluate(conn, job.fine_tuned_model, splits) if run_eval and "test" in splits else None
    summary = {
        "job_id": job.id,
        "fine_tuned_model": job.fine_tuned_model,
        "trained_tokens": job.trained_tokens,
        "files": {name: str(path) for name, path in splits.items()},
        "curves": str(curves) if curves else None,
        "evaluation": report.to_dict() if report is not None else None,
    }
    if as_json:
        summary["evaluation"] = _eval_summary(summary["evaluation"])
        print_json(summary)
        return
    click.echo(f"\nFine-tuned model: {job.fine_tuned_model}\n")
    click.echo(snippet(job.fine_tuned_model, None if conn.embedded else conn.base_url, splits["train"]))
    if report is not None:
        click.echo("")
        click.echo("\n".join(report.summary_lines()))


def _prepare(data: Path, options: PrepareOptions, out_dir: Path | None) -> dict[str, Path]:
    try:
        prepared = prepare_file(data, options)
    except LocalftError as exc:
        raise click.UsageError(exc.message) from None
    paths = prepared.write(out_dir or Path(f"{data.stem}-prepared"))
    counts = ", ".join(f"{len(prepared.splits[name])} {name}" for name in paths)
    dropped = sum(prepared.dropped.values())
    click.echo(f"Prepared {counts} examples, {len(prepared.labels)} labels ({dropped} rows dropped)", err=True)
    return dict(paths)


def _validate(path: Path, split: str) -> None:
    report = validate_file(path)
    if not report.ok:
        click.echo(validation_summary(report), err=True)
        raise CliError(f"The {split} file {path} failed validation: fix the errors above.", EXIT_INVALID_DATA)
    click.echo(f"Validated {path}: {report.n_examples} examples, no errors", err=True)


def _start_job(
    client: openai.OpenAI,
    splits: dict[str, Path],
    model: str,
    hparams: dict[str, Any],
    suffix: str | None,
    seed: int | None,
) -> Any:
    ids = {}
    for name in ("train", "validation"):
        if name in splits:
            with splits[name].open("rb") as fh:
                ids[name] = client.files.create(file=(splits[name].name, fh), purpose="fine-tune").id
    params: dict[str, Any] = {
        "model": model,
        "training_file": ids["train"],
        "method": {"type": "supervised", "supervised": {"hyperparameters": hparams}},
    }
    optional = {"validation_file": ids.get("validation"), "suffix": suffix, "seed": seed}
    params.update({k: v for k, v in optional.items() if v is not None})
    return client.fine_tuning.jobs.create(**params)


def _save_curves(client: openai.OpenAI, job: Any, folder: Path) -> Path | None:
    """The job's loss and validation curves as `curves.png` beside the prepared data, whatever way the job ended."""
    run = job_curves(client, job.id, getattr(job, "user_provided_suffix", None) or job.id)
    if not run.rows:
        return None
    path = write_curves([run], folder / "curves.png")
    click.echo(f"Training curves: {path}", err=True)
    return path


def _raise_for(job: Any) -> None:
    if job.status == "cancelled":
        raise CliError(f"Job {job.id} was cancelled.", EXIT_JOB_CANCELLED)
    message = job.error.message if job.error is not None else "no error message"
    raise CliError(f"Job {job.id} {job.status}: {message}", EXIT_JOB_FAILED)


def _evaluate(conn: Any, model: str, splits: dict[str, Path]) -> Any:
    """Score the fine-tuned model on the whole test split, through the server."""
    from localft.eval.compare import evaluate_model
    from localft.eval.runner import RunOptions
    from localft.eval.testset import load_testset

    try:
        testset = load_testset(splits["test"], extra_label_sources=[splits["train"]])
    except (InvalidRequestError, ValueError) as exc:
        click.echo(f"Skipping the evaluation: {exc}", err=True)
        return None
    click.echo(f"Evaluating on {len(testset.examples)} held-out examples from {splits['test']}", err=True)
    return evaluate_model(testset, model, base_url=conn.base_url, options=RunOptions(progress=False))


def _eval_summary(report: dict[str, Any] | None) -> dict[str, Any] | None:
    """The headline of an evaluation for `--json` (the full report has one row per example)."""
    if report is None:
        return None
    metrics = report.get("metrics", {})
    keys = ("accuracy", "macro_f1", "weighted_f1", "n", "n_out_of_set")
    return {"n": report.get("n"), **{k: metrics[k] for k in keys if k in metrics}}


def snippet(model: str, base_url: str | None, train_file: Path) -> str:
    """Python that calls the model with the system prompt of the training data, ready to paste."""
    system = None
    with train_file.open(encoding="utf-8") as fh:
        first = json.loads(fh.readline() or "{}")
    for message in first.get("messages", []):
        if message.get("role") == "system":
            system = message.get("content")
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": "<text to classify>"}
    ]
    url = base_url or DEFAULT_BASE_URL
    note = "" if base_url else "# start the server first: localft serve\n"
    return (
        f"{note}from openai import OpenAI\n\n"
        f'client = OpenAI(base_url="{url}", api_key="localft")\n'
        f"reply = client.chat.completions.create(\n"
        f'    model="{model}",\n'
        f"    messages={json.dumps(messages, ensure_ascii=False)},\n"
        f"    temperature=0,\n"
        f")\n"
        f"print(reply.choices[0].message.content)"
    )
