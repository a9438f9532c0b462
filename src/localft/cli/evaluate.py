"""`localft eval` and `localft compare`: score models on a test set, alone or side by side.

The test set is chat JSONL (the last assistant message is the gold answer) or a CSV/TSV prepared on the fly with
the same flags as `localft prepare`. Models are asked through any OpenAI-compatible endpoint (`--base-url`; when
no server runs locally, the embedded one is started) or in this process (`--in-process`). Answers are cached in
the output folder, so running the same command again after an interruption resumes where it stopped.
"""

from __future__ import annotations

import functools
import json
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import click

from localft.cli.data import optional_prepare_options, unescape
from localft.cli.render import CliError, api_errors
from localft.client import connect
from localft.data.prepare import PrepareOptions, prepare_file
from localft.errors import InvalidRequestError, LocalftError
from localft.eval.compare import Comparison, compare_models, evaluate_model, job_training_times
from localft.eval.report import EvalReport
from localft.eval.runner import RunOptions
from localft.eval.testset import AnswerFormat, Example, TestSet, load_testset, read_examples
from localft.remote import Send


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")[:60] or "model"


def test_set_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """`prepare`'s flags, made optional: without --text-col/--template the input is read as chat JSONL.

    The command receives `prepare_opts` (None for JSONL) and `answer_format` (--separator, --none-label and
    --assistant-prefix, which describe answers in both cases).
    """
    with_prepare = optional_prepare_options(command)

    @functools.wraps(with_prepare)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        # Read before `with_prepare` folds the flags into `prepare_opts`, which is None for JSONL.
        fmt = AnswerFormat(
            separator=unescape(kwargs["separator"]) or ",",
            none_label=kwargs["none_label"],
            prefix=unescape(kwargs["assistant_prefix"]) or "",
            normalize="lenient" if kwargs.get("lenient") else "exact",
        )
        return with_prepare(*args, **kwargs, answer_format=fmt)

    return wrapper


def run_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Flags shared by eval and compare: where the models run and how they are asked."""
    options = [
        click.option(
            "--base-url",
            envvar="LOCALFT_BASE_URL",
            default=None,
            metavar="URL",
            help="OpenAI-compatible endpoint (env LOCALFT_BASE_URL; default: the local server, "
            "started for the command when none runs).",
        ),
        click.option("--api-key", envvar="LOCALFT_API_KEY", default=None, help="Bearer token for --base-url."),
        click.option(
            "--in-process",
            is_flag=True,
            help="Run models in this process (catalog names, HF folders, checkpoint folders).",
        ),
        click.option(
            "--train",
            "train_path",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="Training JSONL: its labels join the label set; compare trains the TF-IDF baseline on it.",
        ),
        click.option("--test-split", default=None, help="With a CSV: which prepared split to test on [test]."),
        click.option("--labels", default=None, help="Comma-separated label set [labels of the answers]."),
        click.option(
            "--multi-label/--single-label",
            "multi_label",
            default=None,
            help="Answer type [guessed from the gold answers].",
        ),
        click.option(
            "--lenient",
            is_flag=True,
            help="Ignore case, quotes and trailing punctuation when an answer is otherwise a label.",
        ),
        click.option("--concurrency", type=int, default=4, show_default=True, help="Requests in flight."),
        click.option("--retries", type=int, default=5, show_default=True, help="Retries on 429/5xx/timeouts."),
        click.option("--timeout", type=float, default=120.0, show_default=True, help="Seconds per request."),
        click.option("--max-tokens", type=int, default=None, help="Answer length limit [from the gold answers]."),
        click.option("--fresh", is_flag=True, help="Ignore answers cached by an earlier run in the output folder."),
        click.option("--no-plots", is_flag=True, help="Skip the PNG plots."),
        click.option(
            "--save-to-server", is_flag=True, help="Also upload the report (purpose 'evals') so the dashboard shows it."
        ),
        click.option("--json", "as_json", is_flag=True, help="Print the report JSON instead of tables."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@dataclass(frozen=True)
class Inputs:
    """The test set, and the training examples when there are any."""

    testset: TestSet
    train: list[Example] | None


def load_inputs(
    test_path: Path,
    prepare_opts: PrepareOptions | None,
    answer_format: AnswerFormat,
    *,
    train_path: Path | None,
    test_split: str | None,
    labels: str | None,
    multi_label: bool | None,
) -> Inputs:
    """Read a JSONL test set, or prepare a CSV and take its test split (its train split feeds the baseline)."""
    label_list = [x.strip() for x in labels.split(",") if x.strip()] if labels else None
    train = read_examples(train_path) if train_path else None
    if prepare_opts is None:
        testset = load_testset(
            test_path,
            answer_format=answer_format,
            labels=label_list,
            extra_label_sources=[train_path] if train_path else [],
            multi_label=multi_label,
        )
        return Inputs(testset, train)
    prepared = prepare_file(test_path, prepare_opts)
    split = test_split or ("test" if "test" in prepared.splits else next(iter(prepared.splits)))
    if split not in prepared.splits:
        raise InvalidRequestError(f"no split {split!r}; --split made {sorted(prepared.splits)}", param="test_split")
    with tempfile.TemporaryDirectory(prefix="localft-eval-") as tmp:
        paths = prepared.write(tmp)
        fmt = AnswerFormat(
            prepare_opts.multi_label,
            prepare_opts.separator,
            prepare_opts.none_label,
            prepare_opts.assistant_prefix,
            answer_format.normalize,
        )
        testset = load_testset(paths[split], answer_format=fmt, labels=label_list or prepared.labels)
        if train is None and split != "train" and "train" in paths:
            train = read_examples(paths["train"])
    return Inputs(TestSet(testset.examples, testset.labels, testset.answer_format, name=test_path.stem), train)


@contextmanager
def model_access(base_url: str | None, api_key: str | None, in_process: bool) -> Iterator[dict[str, Any]]:
    """Keyword arguments for `compare_models`/`run_model`: an endpoint, or in-process senders."""
    if in_process:
        from localft.base_models import use_threads
        from localft.eval.runner import engine_sender
        from localft.inference.engine import InferenceEngine
        from localft.settings import Settings

        settings = Settings.from_env()
        use_threads(settings.threads)
        engine = InferenceEngine(settings.cache_dir, device=settings.device, int8=settings.int8)

        def sender(model: str) -> Send:
            return engine_sender(engine, model)

        yield {"sender": sender, "local": True, "base_url": None}
        return
    with connect(base_url, api_key=api_key, start_if_down=True) as conn:
        if conn.embedded:
            click.echo(f"No server at the default URL: started an embedded one at {conn.base_url}", err=True)
        yield {"base_url": conn.base_url, "api_key": api_key, "local": conn.embedded, "client": conn.client}


def _upload(client: Any, name: str, document: dict[str, Any]) -> str:
    data = json.dumps(document, ensure_ascii=False).encode("utf-8")
    with api_errors():
        uploaded = client.files.create(file=(name, data, "application/json"), purpose="evals")
    return str(uploaded.id)


def _common(kwargs: dict[str, Any]) -> tuple[Inputs, RunOptions]:
    try:
        inputs = load_inputs(
            kwargs["test_path"],
            kwargs["prepare_opts"],
            kwargs["answer_format"],
            train_path=kwargs["train_path"],
            test_split=kwargs["test_split"],
            labels=kwargs["labels"],
            multi_label=kwargs["multi_label"],
        )
    except InvalidRequestError as exc:
        raise click.UsageError(exc.message) from None
    if kwargs["concurrency"] < 1:
        raise click.UsageError("--concurrency must be at least 1")
    options = RunOptions(
        concurrency=kwargs["concurrency"],
        max_retries=kwargs["retries"],
        timeout=kwargs["timeout"],
        max_tokens=kwargs["max_tokens"],
        progress=not kwargs["as_json"],
    )
    return inputs, options


@click.command("eval")
@click.argument("test_path", metavar="TEST", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-m", "--model", required=True, help="Model id the endpoint serves (or, --in-process, a folder).")
@click.option(
    "-o",
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Report folder [eval-<model>]; its cache.jsonl lets an interrupted run resume.",
)
@run_options
@test_set_options
def eval_command(model: str, out_dir: Path | None, **kwargs: Any) -> None:
    """Score MODEL on TEST: accuracy, F1, per-class report, confusion matrix, latency; report.json/.md and plots.

    \b
    A prepared test split, through the local server:
      localft eval airline/test.jsonl -m ft:smollm2-135m-instruct:localft:tweets:abcd1234
    A CSV split on the fly, against any OpenAI-compatible endpoint:
      localft eval Tweets.csv --text-col text --label-col airline_sentiment --split train=0.8,test=0.2 \\
        -m gpt-4o-mini --base-url https://api.openai.com/v1 --api-key $OPENAI_API_KEY
    """
    inputs, options = _common(kwargs)
    folder = out_dir or Path(f"eval-{_slug(model)}")
    cache = folder / "cache.jsonl"
    if kwargs["fresh"]:
        cache.unlink(missing_ok=True)
    try:
        with model_access(kwargs["base_url"], kwargs["api_key"], kwargs["in_process"]) as access:
            client = access.pop("client", None)
            sender = access.pop("sender", None)
            report = evaluate_model(
                inputs.testset,
                model,
                options=replace(options, cache_path=cache),
                send=sender(model) if sender is not None else None,
                **access,
            )
            written = report.save(folder, plots=not kwargs["no_plots"])
            uploaded = None
            if kwargs["save_to_server"] and client is not None:
                uploaded = _upload(client, f"report-{_slug(model)}-{int(time.time())}.json", report.to_dict())
    except LocalftError as exc:
        raise CliError(exc.message) from exc
    _print_report(report, written, uploaded, kwargs["as_json"])


def _print_report(report: EvalReport, written: list[Path], uploaded: str | None, as_json: bool) -> None:
    if as_json:
        click.echo(report.to_json())
        return
    for line in report.summary_lines():
        click.echo(line)
    click.echo("\nWrote " + ", ".join(str(p) for p in written))
    if uploaded:
        click.echo(f"Uploaded the report as {uploaded} (purpose evals): the dashboard lists it under Evaluations.")


@click.command("compare")
@click.argument("test_path", metavar="TEST", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "-m",
    "--model",
    "models",
    multiple=True,
    required=True,
    help="A model to score (repeat): base models are asked zero-shot with the labels listed.",
)
@click.option(
    "--baseline/--no-baseline",
    default=True,
    show_default=True,
    help="Add TF-IDF + logistic regression trained on --train (or the CSV's train split).",
)
@click.option(
    "-o",
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("compare"),
    show_default=True,
    help="Output folder; cache/ inside it lets an interrupted run resume.",
)
@run_options
@test_set_options
def compare(models: tuple[str, ...], baseline: bool, out_dir: Path, **kwargs: Any) -> None:
    """Score several models on one test set: one table, one plot, plus each model's full report.

    \b
      localft compare airline/test.jsonl --train airline/train.jsonl \\
        -m smollm2-135m-instruct -m ft:smollm2-135m-instruct:localft:tweets:abcd1234 \\
        -m ft:minilm-l6:localft:tweets:ef567890
    """
    inputs, options = _common(kwargs)
    if baseline and inputs.train is None:
        raise click.UsageError("the TF-IDF baseline needs --train (or a CSV with a train split); or --no-baseline")
    cache_dir = out_dir / "cache"
    if kwargs["fresh"]:
        for stale in cache_dir.glob("*.jsonl"):
            stale.unlink()
    try:
        with model_access(kwargs["base_url"], kwargs["api_key"], kwargs["in_process"]) as access:
            client = access.pop("client", None)
            times = job_training_times(access["base_url"], kwargs["api_key"]) if client is not None else {}
            comparison = compare_models(
                inputs.testset,
                list(models),
                train=inputs.train if baseline else None,
                options=options,
                cache_dir=cache_dir,
                training_times=times,
                log=None if kwargs["as_json"] else lambda msg: click.echo(msg, err=True),
                **access,
            )
            written = comparison.save(out_dir, plots=not kwargs["no_plots"])
            uploaded = None
            if kwargs["save_to_server"] and client is not None:
                name = f"report-compare-{_slug(inputs.testset.name)}-{int(time.time())}.json"
                uploaded = _upload(client, name, comparison.to_dict(with_reports=True))
    except LocalftError as exc:
        raise CliError(exc.message) from exc
    _print_comparison(comparison, written, uploaded, kwargs["as_json"])


def _print_comparison(comparison: Comparison, written: list[Path], uploaded: str | None, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(comparison.to_dict(with_reports=True), indent=2))
        return
    click.echo(f"\n{comparison.testset}: {comparison.n} examples, {comparison.task.replace('_', '-')}")
    for line in comparison.summary_lines():
        click.echo(line)
    click.echo(f"\nWrote {len(written)} files under {written[0].parent}")
    if uploaded:
        click.echo(f"Uploaded the comparison as {uploaded} (purpose evals).")
