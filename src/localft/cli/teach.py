"""`localft label`, `localft synth`, `localft distill`: a teacher model labels, invents and is distilled.

The teacher is any OpenAI-compatible endpoint (`--base-url`/`--teacher-base-url` and `--api-key`): a hosted API, a
local server, or localft itself. Every request goes through `localft.remote`: bounded concurrency, retries with
backoff and jitter, a progress bar, final counts, and a JSONL cache that `--resume` continues from.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

import click

from localft.cli.jobs import hyperparameter_options, hyperparameters, watch_to_end
from localft.cli.render import EXIT_JOB_FAILED, CliError, api_errors, print_json, print_table
from localft.client import connect, resolve_base_url
from localft.errors import InvalidRequestError
from localft.labeling import distill as distilling
from localft.labeling.inputs import TextRows, read_labels, read_texts
from localft.labeling.labeler import DEFAULT_INSTRUCTION, label_texts, system_prompt, write_chat_jsonl, write_rejected
from localft.labeling.synth import synthesize, write_examples
from localft.remote import Backoff, RemoteCaller

F = TypeVar("F", bound=Callable[..., Any])


def caller_options(func: F) -> F:
    """Endpoint, concurrency, retries and resume options shared by the three commands."""
    options = [
        click.option("--api-key", envvar="OPENAI_API_KEY", default=None, help="Teacher key (env OPENAI_API_KEY)."),
        click.option("--concurrency", type=click.IntRange(1, 64), default=4, show_default=True),
        click.option("--max-retries", type=click.IntRange(0, 20), default=5, show_default=True),
        click.option("--timeout", type=float, default=60.0, show_default=True, help="Seconds per request."),
        click.option("--resume", is_flag=True, help="Continue from the cache of an interrupted run."),
        click.option("--seed", type=int, default=0, show_default=True),
        click.option("--quiet", is_flag=True, help="No progress bar."),
        click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def label_set_options(func: F) -> F:
    func = click.option("--labels-file", type=click.Path(exists=True, dir_okay=False, path_type=Path))(func)
    return click.option("--labels", "labels_spec", default=None, help="Comma-separated labels, e.g. pos,neg.")(func)


def _labels(labels_spec: str | None, labels_file: Path | None) -> dict[str, str | None]:
    try:
        return read_labels(labels_spec, labels_file)
    except InvalidRequestError as exc:
        raise click.UsageError(exc.message) from exc


def _cache(path: Path, resume: bool) -> Path:
    """The resume cache; an old one is only reused when asked, and never silently thrown away."""
    if path.exists() and not resume:
        raise click.UsageError(f"{path} holds answers from an earlier run: pass --resume to continue it, or delete it.")
    return path


def _caller(base_url: str, opts: dict[str, Any], cache: Path, description: str) -> RemoteCaller:
    return RemoteCaller(
        base_url=base_url,
        api_key=opts["api_key"],
        concurrency=opts["concurrency"],
        max_retries=opts["max_retries"],
        timeout=opts["timeout"],
        backoff=Backoff(),
        cache_path=cache,
        progress=not opts["quiet"],
        description=description,
        seed=opts["seed"],
    )


def _read(path: Path, text_col: str | None, gold_col: str | None) -> TextRows:
    try:
        return read_texts(path, text_col=text_col, gold_col=gold_col)
    except InvalidRequestError as exc:
        raise click.UsageError(exc.message) from exc


def _is_loopback(url: str) -> bool:
    return (urlparse(url).hostname or "") in {"127.0.0.1", "localhost", "::1"}


@click.command()
@click.argument("input_path", metavar="INPUT", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Chat JSONL.")
@click.option("--model", required=True, help="The teacher model.")
@label_set_options
@click.option("--text-col", default="text", show_default=True)
@click.option("--instruction", default=None, help="System prompt; {labels} is replaced by the shuffled options.")
@click.option("--rounds", type=click.IntRange(1, 10), default=2, show_default=True, help="Reshuffles per text.")
@click.option("--base-url", envvar="LOCALFT_BASE_URL", default=None, help="Teacher endpoint (default: localft).")
@caller_options
def label(
    input_path: Path,
    output: Path,
    model: str,
    labels_spec: str | None,
    labels_file: Path | None,
    text_col: str,
    instruction: str | None,
    rounds: int,
    base_url: str | None,
    **opts: Any,
) -> None:
    """Label the texts of INPUT (CSV, TSV or JSONL) with a teacher into chat JSONL.

    Texts whose answers never name exactly one label are retried, then listed in OUTPUT.rejected.jsonl (with the
    teacher's last answer), never written to OUTPUT. Answers are cached in OUTPUT.cache.jsonl for --resume.

    \b
    Example:
      localft label questions.csv --labels-file intents.txt --model gpt-4o-mini \\
        --base-url https://api.openai.com/v1 -o labelled.jsonl
    """
    labels = _labels(labels_spec, labels_file)
    rows = _read(input_path, text_col, None)
    url, _ = resolve_base_url(base_url)
    caller = _caller(url, opts, _cache(output.with_suffix(".cache.jsonl"), opts["resume"]), "labelling")
    descriptions = {k: v for k, v in labels.items() if v}
    instruction = instruction or DEFAULT_INSTRUCTION
    with api_errors():
        run = label_texts(
            rows.texts,
            list(labels),
            model=model,
            caller=caller,
            seed=opts["seed"],
            rounds=rounds,
            descriptions=descriptions,
            instruction=instruction,
        )
    # The training data gets the options in their given order: only the teacher's prompts are shuffled.
    written = write_chat_jsonl(run.items, output, system_prompt(list(labels), instruction, descriptions))
    rejected_path = output.with_suffix(".rejected.jsonl")
    rejected_path.unlink(missing_ok=True)  # a list left by an earlier run would no longer be true
    n_rejected = write_rejected(run.items, rejected_path) if run.rejected else 0
    summary = {
        "output": str(output),
        "labelled": written,
        "rejected": n_rejected,
        "rejected_file": str(rejected_path) if n_rejected else None,
        "skipped_empty": rows.skipped,
        "labels": run.label_counts(),
        "requests": run.stats,
    }
    if opts["as_json"]:
        print_json(summary)
    else:
        click.echo(f"Labelled {written} of {len(rows.texts)} texts -> {output}")
        print_table([{"label": k, "count": v} for k, v in run.label_counts().items()], ("label", "count"))
        if n_rejected:
            click.echo(f"{n_rejected} texts got no valid label after {rounds} round(s): see {rejected_path}", err=True)
        click.echo(caller.stats.summary())
    if written == 0:
        raise CliError("No text was labelled.")


@click.command()
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True, help=".csv or .jsonl")
@click.option("--model", required=True, help="The model that writes the examples.")
@label_set_options
@click.option("-n", "--per-class", type=click.IntRange(1), required=True, help="Examples wanted per label.")
@click.option("--per-request", type=click.IntRange(1, 100), default=10, show_default=True)
@click.option("--max-rounds", type=click.IntRange(1, 50), default=5, show_default=True)
@click.option("--temperature", type=float, default=1.0, show_default=True)
@click.option(
    "--max-tokens", type=click.IntRange(8), default=512, show_default=True, help="Longest answer per request."
)
@click.option("--base-url", envvar="LOCALFT_BASE_URL", default=None, help="Teacher endpoint (default: localft).")
@caller_options
def synth(
    output: Path,
    model: str,
    labels_spec: str | None,
    labels_file: Path | None,
    per_class: int,
    per_request: int,
    max_rounds: int,
    temperature: float,
    max_tokens: int,
    base_url: str | None,
    **opts: Any,
) -> None:
    """Generate N example inputs per label from label descriptions, without duplicates.

    \b
    Example (intents.txt holds `label: description` lines):
      localft synth --labels-file intents.txt -n 50 --model gpt-4o -o questions.csv
    """
    labels = _labels(labels_spec, labels_file)
    url, _ = resolve_base_url(base_url)
    caller = _caller(url, opts, _cache(output.with_suffix(".cache.jsonl"), opts["resume"]), "generating")
    with api_errors():
        run = synthesize(
            labels,
            per_class,
            model=model,
            caller=caller,
            per_request=per_request,
            max_rounds=max_rounds,
            temperature=temperature,
            max_tokens=max_tokens,
        )
    write_examples(run.examples, output)
    if opts["as_json"]:
        print_json({"output": str(output), **run.to_dict()})
        return
    click.echo(f"Wrote {len(run.examples)} examples -> {output}")
    table = [
        {
            "label": c.label,
            "kept": c.kept,
            "generated": c.generated,
            "exact_dups": c.exact_duplicates,
            "near_dups": c.near_duplicates,
            "distinct_2": c.diversity.get("distinct_2"),
            "mean_sim": c.diversity.get("mean_similarity"),
            "shortfall": c.shortfall,
        }
        for c in run.classes
    ]
    print_table(table, list(table[0]) if table else ["label"])
    click.echo(caller.stats.summary())


@click.command()
@click.argument("input_path", metavar="[INPUT]", required=False, type=click.Path(exists=True, path_type=Path))
@click.option("-o", "--output-dir", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--teacher", required=True, help="Teacher model (labels the training texts).")
@click.option("--student", required=True, help="Base model to fine-tune on the teacher's labels.")
@label_set_options
@click.option("--text-col", default="text", show_default=True)
@click.option("--gold-col", default=None, help="Column of true labels in INPUT (used for the held-out score).")
@click.option("--test-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None)
@click.option("--test-gold-col", default="label", show_default=True)
@click.option("--holdout", type=click.FloatRange(0.05, 0.9), default=0.2, show_default=True)
@click.option(
    "--validation",
    type=click.FloatRange(0.0, 0.5),
    default=0.1,
    show_default=True,
    help="Share of the teacher-labelled texts given to the job as its validation file.",
)
@click.option("--synth", "synth_per_class", type=click.IntRange(1), default=None, help="Generate N texts per label.")
@hyperparameter_options
@click.option("--price", "prices", multiple=True, metavar="MODEL=IN,OUT", help="USD per 1M prompt/completion tokens.")
@click.option("--cpu-hour-usd", type=float, default=distilling.DEFAULT_CPU_HOUR_USD, show_default=True)
@click.option("--teacher-base-url", default=None, help="Teacher endpoint (default: the localft server).")
@click.option("--base-url", envvar="LOCALFT_BASE_URL", default=None, help="The localft server for the student.")
@caller_options
def distill(
    input_path: Path | None,
    output_dir: Path,
    teacher: str,
    student: str,
    labels_spec: str | None,
    labels_file: Path | None,
    text_col: str,
    gold_col: str | None,
    test_file: Path | None,
    test_gold_col: str,
    holdout: float,
    validation: float,
    synth_per_class: int | None,
    n_epochs: int | None,
    batch_size: int | None,
    learning_rate_multiplier: float | None,
    max_length: int | None,
    prices: tuple[str, ...],
    cpu_hour_usd: float,
    teacher_base_url: str | None,
    base_url: str | None,
    **opts: Any,
) -> None:
    """Label (or synthesise) with a teacher, fine-tune a student, compare both on held-out texts.

    \b
    Example:
      localft distill questions.csv --labels-file intents.txt --teacher gpt-4o-mini \\
        --teacher-base-url https://api.openai.com/v1 --student smollm2-135m-instruct \\
        --price gpt-4o-mini=0.15,0.60 -o runs/router
    """
    labels = _labels(labels_spec, labels_file)
    try:
        price_table = dict(distilling.Price.parse(p) for p in prices)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    if input_path is None and synth_per_class is None:
        raise click.UsageError("give INPUT texts, --synth N, or both")
    pool = _read(input_path, text_col, gold_col) if input_path else TextRows([], [], 0)
    test = _read(test_file, text_col, test_gold_col) if test_file else None
    teacher_cache = _cache(output_dir / "cache-teacher.jsonl", opts["resume"])
    student_cache = _cache(output_dir / "cache-student.jsonl", opts["resume"])
    with connect(base_url, start_if_down=True) as conn, api_errors():
        teacher_url = (teacher_base_url or conn.base_url).rstrip("/")
        result = distilling.distill(
            labels=labels,
            teacher=teacher,
            teacher_endpoint=distilling.Endpoint(
                _caller(teacher_url, opts, teacher_cache, "teacher"),
                local=_is_loopback(teacher_url),
                in_process=conn.embedded and teacher_url == conn.base_url,
            ),
            student_base=student,
            client=conn.client,
            student_endpoint=distilling.Endpoint(
                _caller(conn.base_url, opts, student_cache, "student"),
                local=_is_loopback(conn.base_url),
                in_process=conn.embedded,
            ),
            output_dir=output_dir,
            pool=list(zip(pool.texts, pool.gold, strict=True)),
            test=list(zip(test.texts, test.gold, strict=True)) if test else None,
            holdout=holdout,
            validation=validation,
            synth_per_class=synth_per_class,
            seed=opts["seed"],
            hyperparameters=hyperparameters(n_epochs, batch_size, learning_rate_multiplier, max_length),
            prices=price_table,
            cpu_hour_usd=cpu_hour_usd,
            wait=lambda job_id: watch_to_end(conn.client, job_id),
        )
    if opts["as_json"]:
        print_json(json.loads((output_dir / "report.json").read_text(encoding="utf-8")))
    else:
        click.echo(f"Trained on {result.train_examples} teacher-labelled texts ({result.train_rejected} rejected)")
        click.echo(f"Held-out: {result.test_examples} texts, scored against {result.reference}")
        click.echo(distilling.format_table(result.scores))
        click.echo(f"Report: {output_dir / 'report.json'}")
    if result.job_status != "succeeded":
        raise CliError(f"Student job {result.job_id} ended {result.job_status}.", EXIT_JOB_FAILED)
