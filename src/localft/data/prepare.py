"""`localft prepare`: a CSV, TSV or JSONL table in, fine-tuning JSONL splits out.

The steps, in order (each one counted in the result, so nothing disappears silently):

1. rows -> examples: the text (one column or a template over several), the answer (one label column, or 0/1
   label columns joined for multi-label); rows with an empty text or label are dropped, with the reason;
2. label selection: keep the top-k classes, or drop named ones (single-label: their rows are dropped;
   multi-label: those label columns are ignored);
3. sampling: at most `per_class` rows of each class, then at most `max_examples` rows, taken from the start of
   each class (`sample="first"`) or at random with `seed`;
4. stratified splits by fraction or row count (`balanced` gives each class an equal share instead);
5. records: chat messages (system prompt with `{labels}`, assistant prefix) or legacy prompt/completion.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from localft.data import labels as label_tools
from localft.data.readers import InputFormat, Table, is_missing, read_table
from localft.data.records import (
    DEFAULT_PROMPT_SEPARATOR,
    Example,
    OutputFormat,
    render_system_prompt,
    render_template,
    template_fields,
    to_record,
)
from localft.data.sampling import SplitSpec, allocate, check_splits, ordered_pool, split_sizes
from localft.errors import InvalidRequestError

SampleMode = Literal["random", "first"]

# Reasons rows are dropped (bad or unwanted data) or left unused (sampling limits), as shown in the summary.
EMPTY_TEXT = "empty text"
EMPTY_LABEL = "empty label"
INVALID_FLAG = "label cell is not 0/1"
DROPPED_LABEL = "label dropped (--drop-label)"
NOT_TOP_K = "label outside the top-k (--top-k)"
OVER_PER_CLASS = "over --per-class"
OVER_MAX = "over --max-examples"
OVER_SMALLEST = "over the smallest class (--balanced)"
OUTSIDE_SPLITS = "beyond the split sizes"
# How many line numbers per drop reason the result keeps, to point at examples without storing every one.
LINES_KEPT = 5


@dataclass(frozen=True)
class PrepareOptions:
    """How rows become training records; each field is one `localft prepare` flag (cli/data.py)."""

    text_column: str | None = None
    """Column holding the text to classify."""
    template: str | None = None
    """Text built from several columns instead, e.g. 'Case Title: {case_title}\\n\\nCase Text: {case_text}'."""
    label_column: str | None = None
    """Column holding the class (single-label)."""
    label_columns: tuple[str, ...] = ()
    """0/1 columns, one per label (multi-label); the answer joins the positive ones."""
    separator: str = ","
    """Joins the positive labels of a multi-label answer."""
    none_label: str = "none"
    """Answer of a multi-label row with no positive label."""
    system_prompt: str | None = None
    """System message; `{labels}` is replaced by the comma-separated classes."""
    assistant_prefix: str = ""
    """Put before the answer in the assistant message, e.g. 'Case Outcome: '."""
    output_format: OutputFormat = "chat"
    """'chat' messages, or the legacy 'prompt_completion' format."""
    prompt_separator: str = DEFAULT_PROMPT_SEPARATOR
    """End of every prompt in the legacy format."""
    top_k: int | None = None
    """Keep only the k most frequent classes."""
    drop_labels: tuple[str, ...] = ()
    """Classes to leave out."""
    per_class: int | None = None
    """Balanced sampling: at most this many rows of each class."""
    balanced: bool = False
    """Give every class an equal share of each split (stratified, proportional shares otherwise)."""
    sample: SampleMode = "random"
    """Which rows fill a class quota: 'random' (seeded) or 'first' (from the start of each class, file order)."""
    splits: SplitSpec = (("train", 1.0),)
    """Split names and sizes: all fractions (train=0.8,test=0.2) or all row counts (train=100,test=100)."""
    seed: int = 42
    """Seed for sampling and shuffling."""
    shuffle: bool = True
    """Shuffle the rows of each split (file order otherwise)."""
    max_examples: int | None = None
    """At most this many rows in all splits together (stratified)."""
    encoding: str = "utf-8"
    """Encoding of CSV/TSV/JSONL input."""
    delimiter: str | None = None
    """Field separator (default: ',' for CSV, tab for TSV)."""
    input_format: InputFormat | None = None
    """'csv', 'tsv' or 'jsonl' (default: from the file extension)."""

    def __post_init__(self) -> None:
        if (self.text_column is None) == (self.template is None):
            raise InvalidRequestError("give exactly one of --text-col or --template", param="text_column")
        if (self.label_column is None) == (not self.label_columns):
            raise InvalidRequestError(
                "give exactly one of --label-col (single-label) or --label-cols (multi-label)", param="label_column"
            )
        if self.template is not None:
            try:
                template_fields(self.template)
            except ValueError as exc:
                raise InvalidRequestError(str(exc), param="template") from None
        for name, value in (("top_k", self.top_k), ("per_class", self.per_class), ("max_examples", self.max_examples)):
            if value is not None and value < 1:
                raise InvalidRequestError(f"--{name.replace('_', '-')} must be at least 1", param=name)
        if self.sample not in {"random", "first"}:
            raise InvalidRequestError("--sample must be 'random' or 'first'", param="sample")
        if self.output_format not in {"chat", "prompt_completion"}:
            raise InvalidRequestError("--format must be 'chat' or 'prompt_completion'", param="output_format")
        try:
            check_splits(self.splits)
        except ValueError as exc:
            raise InvalidRequestError(f"--split: {exc}", param="splits") from None

    @property
    def multi_label(self) -> bool:
        return bool(self.label_columns)


@dataclass
class Prepared:
    """The outcome of `prepare`: examples per split, the labels, and every row that did not make it, with why."""

    source: Path
    options: PrepareOptions
    rows_in: int
    labels: list[str]
    splits: dict[str, list[Example]]
    dropped: dict[str, int] = field(default_factory=dict)
    """Rows removed for bad or unwanted data, by reason."""
    dropped_lines: dict[str, list[int]] = field(default_factory=dict)
    """The first few file lines of each drop reason."""
    unused: dict[str, int] = field(default_factory=dict)
    """Good rows left out by the sampling limits, by reason."""

    @property
    def rows_out(self) -> int:
        return sum(len(examples) for examples in self.splits.values())

    @property
    def system_prompt(self) -> str | None:
        template = self.options.system_prompt
        return render_system_prompt(template, self.labels) if template else None

    def class_counts(self) -> dict[str, dict[str, int]]:
        """Per split, rows per class (multi-label: per label, a row counting once for each of its labels)."""
        return {
            name: label_tools.sorted_counts(label for example in examples for label in example.labels)
            for name, examples in self.splits.items()
        }

    def records(self, split: str) -> list[dict[str, object]]:
        """The JSONL objects of one split."""
        opts = self.options
        return [
            to_record(
                example,
                output_format=opts.output_format,
                system=self.system_prompt,
                assistant_prefix=opts.assistant_prefix,
                separator=opts.prompt_separator,
            )
            for example in self.splits[split]
        ]

    def write(self, out_dir: str | Path) -> dict[str, Path]:
        """Write `<split>.jsonl` for each split plus `prepare.json` (this summary); returns the JSONL paths."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths: dict[str, Path] = {}
        for name in self.splits:
            path = out / f"{name}.jsonl"
            lines = (json.dumps(record, ensure_ascii=False) + "\n" for record in self.records(name))
            path.write_text("".join(lines), encoding="utf-8")
            paths[name] = path
        (out / "prepare.json").write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n")
        return paths

    def to_dict(self) -> dict[str, object]:
        return {
            "source": str(self.source),
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "labels": self.labels,
            "multi_label": self.options.multi_label,
            "splits": {name: len(examples) for name, examples in self.splits.items()},
            "class_counts": self.class_counts(),
            "dropped": self.dropped,
            "dropped_lines": self.dropped_lines,
            "unused": self.unused,
            "options": asdict(self.options),
        }


def prepare_file(path: str | Path, options: PrepareOptions) -> Prepared:
    """Read a CSV/TSV/JSONL file and prepare it (see the module docstring for the steps)."""
    table = read_table(path, encoding=options.encoding, delimiter=options.delimiter, input_format=options.input_format)
    return prepare_table(table, options)


def prepare_table(table: Table, options: PrepareOptions) -> Prepared:
    """Prepare rows already read; raises InvalidRequestError naming a missing column or an impossible split."""
    _check_columns(table, options)
    drops = _Drops()
    label_columns = _kept_label_columns(table, options) if options.multi_label else []
    built = (_to_example(row, line, options, label_columns, drops) for row, line in _rows(table))
    examples = [example for example in built if example is not None]
    if options.multi_label:
        labels = label_columns
    else:
        examples, labels = _select_classes(examples, options, drops)
    if not examples:
        reasons = ", ".join(f"{reason}: {count}" for reason, count in drops.counts.most_common())
        raise InvalidRequestError(
            f"no usable rows in {table.path.name} ({reasons or 'the file has no data rows'}); "
            "check --text-col/--template and the label options",
            param="input",
            code="no_examples",
        )
    splits, unused = _sample_and_split(examples, options)
    return Prepared(
        source=table.path,
        options=options,
        rows_in=len(table.rows),
        labels=labels,
        splits=splits,
        dropped=dict(drops.counts),
        dropped_lines=drops.lines,
        unused=unused,
    )


class _Drops:
    """Counts dropped rows by reason and remembers the first few lines of each."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.lines: dict[str, list[int]] = {}

    def add(self, reason: str, line: int) -> None:
        self.counts[reason] += 1
        kept = self.lines.setdefault(reason, [])
        if len(kept) < LINES_KEPT:
            kept.append(line)


def _rows(table: Table) -> zip[tuple[dict[str, str], int]]:
    return zip(table.rows, table.lines, strict=True)


def _check_columns(table: Table, options: PrepareOptions) -> None:
    if options.text_column is not None:
        table.require(options.text_column, "--text-col")
    if options.template is not None:
        for name in template_fields(options.template):
            table.require(name, "--template")
    if options.label_column is not None:
        table.require(options.label_column, "--label-col")
    for name in options.label_columns:
        table.require(name, "--label-cols")


def _kept_label_columns(table: Table, options: PrepareOptions) -> list[str]:
    """Multi-label: the label columns left after --drop-label and --top-k (by number of positive rows)."""
    columns = [name for name in options.label_columns if name not in options.drop_labels]
    if options.top_k is not None:
        positives = {
            name: sum(label_tools.parse_flag(row.get(name, "")) is True for row in table.rows) for name in columns
        }
        top = set(label_tools.top_k(positives, options.top_k))
        columns = [name for name in columns if name in top]
    return columns


def _to_example(
    row: dict[str, str], line: int, options: PrepareOptions, label_columns: list[str], drops: _Drops
) -> Example | None:
    if options.template is not None:
        if any(is_missing(row.get(name)) for name in template_fields(options.template)):
            drops.add(EMPTY_TEXT, line)
            return None
        text = render_template(options.template, row)
    else:
        raw = row.get(options.text_column or "")
        if raw is None or is_missing(raw):
            drops.add(EMPTY_TEXT, line)
            return None
        text = raw
    if not options.multi_label:
        label = row.get(options.label_column or "")
        if label is None or is_missing(label):
            drops.add(EMPTY_LABEL, line)
            return None
        label = label.strip()
        return Example(text=text, answer=label, labels=(label,), line=line)
    cells = [row.get(name) for name in label_columns]
    if any(cell is None or is_missing(cell) for cell in cells):
        drops.add(EMPTY_LABEL, line)
        return None
    flags = [label_tools.parse_flag(cell or "") for cell in cells]
    if any(flag is None for flag in flags):
        drops.add(INVALID_FLAG, line)
        return None
    positives = [name for name, flag in zip(label_columns, flags, strict=True) if flag]
    answer = label_tools.join_labels(positives, separator=options.separator, none_label=options.none_label)
    return Example(text=text, answer=answer, labels=tuple(positives) or (options.none_label,), line=line)


def _select_classes(examples: list[Example], options: PrepareOptions, drops: _Drops) -> tuple[list[Example], list[str]]:
    """Single-label: drop the rows of --drop-label classes and of classes outside --top-k."""
    counts = label_tools.sorted_counts(example.answer for example in examples)
    keep = [label for label in counts if label not in options.drop_labels]
    if options.top_k is not None:
        keep = label_tools.top_k({label: counts[label] for label in keep}, options.top_k)
    kept_set = set(keep)
    selected: list[Example] = []
    for example in examples:
        if example.answer in kept_set:
            selected.append(example)
        else:
            drops.add(DROPPED_LABEL if example.answer in options.drop_labels else NOT_TOP_K, example.line)
    return selected, sorted(kept_set)


def _sample_and_split(
    examples: list[Example], options: PrepareOptions
) -> tuple[dict[str, list[Example]], dict[str, int]]:
    """Steps 3 and 4: class pools, the sampling limits, then the splits; returns the splits and the unused rows."""
    rng = random.Random(options.seed)
    by_class: dict[str, list[Example]] = {}
    for example in examples:
        by_class.setdefault(example.answer, []).append(example)
    randomize = options.sample == "random"
    pools = {key: ordered_pool(by_class[key], randomize=randomize, rng=rng) for key in sorted(by_class)}
    unused = _apply_limits(pools, options)
    splits = _take_splits(pools, options, rng)
    leftover = sum(len(pool) for pool in pools.values())
    if leftover:
        unused[OUTSIDE_SPLITS] += leftover
    return splits, {reason: count for reason, count in unused.items() if count}


def _apply_limits(pools: dict[str, list[Example]], options: PrepareOptions) -> Counter[str]:
    """Cut the pools (in place) to --per-class (or the smallest class, for --balanced fractions) and
    --max-examples; returns the rows cut, by reason."""
    unused: Counter[str] = Counter()
    cap = options.per_class
    fractions = not all(isinstance(size, int) for _, size in options.splits)
    if cap is None and options.balanced and fractions and pools:
        cap = min(len(pool) for pool in pools.values())
    if cap is not None:
        for key, pool in pools.items():
            unused[OVER_PER_CLASS if options.per_class else OVER_SMALLEST] += max(0, len(pool) - cap)
            pools[key] = pool[:cap]
    total = sum(len(pool) for pool in pools.values())
    if options.max_examples is not None and total > options.max_examples:
        quotas = allocate(options.max_examples, {key: len(pool) for key, pool in pools.items()}, equal=options.balanced)
        for key, pool in pools.items():
            unused[OVER_MAX] += len(pool) - quotas[key]
            pools[key] = pool[: quotas[key]]
    return unused


def _take_splits(
    pools: dict[str, list[Example]], options: PrepareOptions, rng: random.Random
) -> dict[str, list[Example]]:
    """Fill the splits in order, each with its quota per class taken from the front of the pools (in place)."""
    total = sum(len(pool) for pool in pools.values())
    sizes = split_sizes(total, options.splits)
    if sum(sizes.values()) > total:
        asked = ", ".join(f"{name}={size}" for name, size in sizes.items())
        raise InvalidRequestError(
            f"--split asks for {sum(sizes.values())} rows ({asked}) but only {total} remain after filtering; "
            "lower the split sizes or use fractions",
            param="splits",
        )
    splits: dict[str, list[Example]] = {}
    for name, size in sizes.items():
        quotas = allocate(size, {key: len(pool) for key, pool in pools.items()}, equal=options.balanced)
        chosen = [example for key, pool in pools.items() for example in pool[: quotas[key]]]
        for key in pools:
            pools[key] = pools[key][quotas[key] :]
        if options.shuffle:
            rng.shuffle(chosen)
        else:
            chosen.sort(key=lambda example: example.line)
        splits[name] = chosen
    return splits
