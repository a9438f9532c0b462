"""`localft prepare` and `localft validate`: the data verbs, thin over localft.data.

`prepare_options` is the option set of `prepare`: it adds the flags and hands the command one ready
`prepare_opts: PrepareOptions` argument. `optional_prepare_options` is the same for commands that take a CSV or
prepared JSONL (`train`, `eval`, `compare`): `prepare_opts` is None when the input is JSONL.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from localft.data.prepare import PrepareOptions, prepare_file
from localft.data.sampling import parse_splits
from localft.data.summary import prepare_summary, validation_summary
from localft.data.tokens import APPROXIMATE, model_tokens
from localft.data.validate import MIN_EXAMPLES, validate_file
from localft.errors import InvalidRequestError, LocalftError
from localft.training.auto import training_budget

# Same convention as the other verbs (cli/render.py): 3 means the data failed validation.
EXIT_INVALID_DATA = 3

_ESCAPE = re.compile(r"\\([nt\\])")


def unescape(value: str | None) -> str | None:
    r"""Turn the two-character sequences \n, \t and \\ typed in a shell into the characters they name."""
    if value is None:
        return None
    return _ESCAPE.sub(lambda match: {"n": "\n", "t": "\t", "\\": "\\"}[match.group(1)], value)


def _split_list(value: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (value or "").split(",") if part.strip())


_OPTIONS: list[Callable[[Callable[..., Any]], Callable[..., Any]]] = [
    click.option("--text-col", help="Column with the text to classify."),
    click.option("--template", help=r"Text from several columns instead: 'Title: {title}\n\nText: {body}'."),
    click.option("--label-col", help="Column with the class (single-label)."),
    click.option("--label-cols", help="Comma-separated 0/1 columns, one per label (multi-label)."),
    click.option("--separator", default=",", show_default=True, help="Joins the labels of a multi-label answer."),
    click.option("--none-label", default="none", show_default=True, help="Multi-label answer when no label is set."),
    click.option("--system", "system_prompt", help="System prompt; {labels} lists the classes."),
    click.option("--assistant-prefix", default="", help="Put before every answer, e.g. 'Case Outcome: '."),
    click.option(
        "--format",
        "output_format",
        type=click.Choice(["chat", "prompt_completion"]),
        default="chat",
        show_default=True,
        help="Chat messages, or legacy prompt/completion records.",
    ),
    click.option("--top-k", type=int, help="Keep only the k most frequent classes."),
    click.option("--drop-label", "drop_labels", multiple=True, help="Leave out a class (repeatable)."),
    click.option("--per-class", type=int, help="Balanced sampling: at most N rows per class."),
    click.option("--balanced", is_flag=True, help="Equal share of every class in each split."),
    click.option(
        "--sample",
        type=click.Choice(["random", "first"]),
        default="random",
        show_default=True,
        help="Fill class quotas at random (seeded) or from the start of each class.",
    ),
    click.option(
        "--split",
        "split_spec",
        default="train=1.0",
        show_default=True,
        help="Stratified splits: fractions (train=0.8,validation=0.1,test=0.1) or counts (train=100,test=100).",
    ),
    click.option("--seed", type=int, default=42, show_default=True, help="Seed for sampling and shuffling."),
    click.option("--shuffle/--no-shuffle", default=True, show_default=True, help="Shuffle rows within each split."),
    click.option("--max-examples", type=int, help="At most N examples over all splits (stratified)."),
    click.option("--encoding", default="utf-8", show_default=True, help="Input encoding, e.g. latin-1."),
    click.option("--delimiter", help=r"Field separator (default ',' for CSV, \t for .tsv)."),
]


def _option_names() -> tuple[str, ...]:
    """The keyword names click derives from _OPTIONS, popped by `prepare_options` before the command runs."""

    def probe() -> None:
        """Only carries the options."""

    for option in _OPTIONS:
        probe = option(probe)
    return tuple(str(param.name) for param in getattr(probe, "__click_params__", []))


_OPTION_NAMES = _option_names()


def prepare_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add the `prepare` flags to a click command; it receives them as one `prepare_opts: PrepareOptions`."""
    return _with_prepare_options(command, optional=False)


def optional_prepare_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """`prepare_options` for commands that also read prepared chat JSONL: with neither --text-col nor --template
    the input is JSONL and the command gets `prepare_opts=None` (the other flags are then not checked)."""
    return _with_prepare_options(command, optional=True)


def _with_prepare_options(command: Callable[..., Any], *, optional: bool) -> Callable[..., Any]:
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        raw = {name: kwargs.pop(name) for name in _OPTION_NAMES}
        is_table = raw["text_col"] is not None or raw["template"] is not None
        kwargs["prepare_opts"] = _build_options(raw) if is_table or not optional else None
        return command(*args, **kwargs)

    for option in reversed(_OPTIONS):
        wrapper = option(wrapper)
    return wrapper


def _build_options(raw: dict[str, Any]) -> PrepareOptions:
    try:
        splits = parse_splits(raw["split_spec"])
        return PrepareOptions(
            text_column=raw["text_col"],
            template=unescape(raw["template"]),
            label_column=raw["label_col"],
            label_columns=_split_list(raw["label_cols"]),
            separator=unescape(raw["separator"]) or ",",
            none_label=raw["none_label"],
            system_prompt=unescape(raw["system_prompt"]),
            assistant_prefix=unescape(raw["assistant_prefix"]) or "",
            output_format=raw["output_format"],
            top_k=raw["top_k"],
            drop_labels=tuple(raw["drop_labels"]),
            per_class=raw["per_class"],
            balanced=raw["balanced"],
            sample=raw["sample"],
            splits=splits,
            seed=raw["seed"],
            shuffle=raw["shuffle"],
            max_examples=raw["max_examples"],
            encoding=raw["encoding"],
            delimiter=unescape(raw["delimiter"]),
        )
    except ValueError as exc:
        raise click.UsageError(f"--split: {exc}") from None
    except InvalidRequestError as exc:
        raise click.UsageError(exc.message) from None


@click.command()
@click.argument("input_path", metavar="INPUT", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "-o", "--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), help="Output folder [INPUT-prepared]."
)
@prepare_options
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def prepare(input_path: Path, out_dir: Path | None, prepare_opts: PrepareOptions, as_json: bool) -> None:
    """Turn a CSV, TSV or JSONL table into fine-tuning JSONL (one file per split) and print a summary.

    \b
    Single-label, balanced, 100 train / 100 test taken from the start of each class:
      localft prepare Tweets.csv --text-col text --label-col airline_sentiment \\
        --balanced --sample first --split train=100,test=100 -o airline/
    Multi-label (0/1 columns), 'none' when no label applies:
      localft prepare train.csv --text-col comment_text --label-cols toxic,insult,threat --none-label none
    """
    try:
        prepared = prepare_file(input_path, prepare_opts)
    except InvalidRequestError as exc:
        raise click.UsageError(exc.message) from None
    except LocalftError as exc:
        raise click.ClickException(exc.message) from None
    target = out_dir or Path(f"{input_path.stem}-prepared")
    paths = prepared.write(target)
    if as_json:
        click.echo(json.dumps({**prepared.to_dict(), "files": {k: str(v) for k, v in paths.items()}}, indent=2))
        return
    click.echo(prepare_summary(prepared))
    click.echo("\nWrote " + ", ".join(f"{path} ({len(prepared.splits[name])})" for name, path in paths.items()))


@click.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--model", help="Count tokens with this base model's tokenizer (name, alias or local folder).")
@click.option(
    "--max-tokens",
    type=click.IntRange(1),
    help="Per-example token limit: the max_length your job will ask for [with --model: what its jobs use by default "
    "(512 LLM, 256 encoder)]; never more than the model's context.",
)
@click.option("--min-examples", type=int, default=MIN_EXAMPLES, show_default=True, help="Fewer is an error.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def validate(path: Path, model: str | None, max_tokens: int | None, min_examples: int, as_json: bool) -> None:
    """Check a fine-tuning JSONL file: every problem with its line and a fix, then token and label statistics.

    Exits with 3 when the file has errors (warnings alone exit 0).

    \b
      localft validate airline/train.jsonl
      localft validate airline/train.jsonl --model smollm2-135m-instruct --json
    """
    tokens = APPROXIMATE
    if model is not None:
        try:
            tokens = model_tokens(model)
        except LocalftError as exc:
            raise click.ClickException(exc.message) from None
    budget = training_budget(tokens.family)
    if max_tokens is not None:  # the length a job will ask for, in place of the family's default
        budget = dataclasses.replace(budget, max_length=max_tokens)
    report = validate_file(
        path,
        count_tokens=tokens.count,
        max_tokens=tokens.context,
        min_examples=min_examples,
        tokenizer_name=tokens.name,
        budget=budget,
    )
    click.echo(json.dumps(report.to_dict(), indent=2) if as_json else validation_summary(report))
    if not report.ok:
        click.get_current_context().exit(EXIT_INVALID_DATA)
