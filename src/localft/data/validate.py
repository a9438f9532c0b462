"""`localft validate` and the server's job-start check: one JSONL file in, one ValidationReport out.

Never raises on user data: every problem (bad bytes, bad JSON, bad shape, too few examples, duplicates, examples
over the context) becomes a Problem with its 1-based line and a fix. Only `ValidationReport.raise_for_errors`
turns a failed report into a DataValidationError, for callers (the training engine) that must stop.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localft.data.budget import OPENAI_BUDGET, TrainingBudget, trained_tokens
from localft.data.checks import (
    ExampleFormat,
    Findings,
    Problem,
    answer_of,
    as_messages,
    check_chat,
    check_prompt_completion,
    example_format,
)
from localft.data.labels import IMBALANCE_WARNING_RATIO, LabelStats, label_parts, label_stats
from localft.data.tokens import APPROX_CHARS_PER_TOKEN, TokenCounter, approx_tokens, example_tokens
from localft.errors import DataValidationError

MIN_EXAMPLES = 10
# A file with thousands of broken lines would otherwise give a report as big as the file: after this many
# problems of one code only the count grows (`problem_counts`).
MAX_PROBLEMS_PER_CODE = 50


@dataclass
class ValidationReport:
    """Everything `validate` found: problems, and the numbers that describe the data and its training budget."""

    path: str
    format: ExampleFormat | None = None
    n_lines: int = 0
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    problem_counts: dict[str, int] = field(default_factory=dict)
    """Every problem code with how often it occurred (including those past MAX_PROBLEMS_PER_CODE)."""
    token_counts: list[int] = field(default_factory=list)
    """Tokens of each valid example, in file order."""
    message_counts: list[int] = field(default_factory=list)
    labels: LabelStats | None = None
    """Distribution of the answers (the last trained assistant message, or the completion)."""
    label_parts: LabelStats | None = None
    """Per-label counts when the answers are multi-label (labels joined with ',')."""
    tokenizer: str = f"approximate ({APPROX_CHARS_PER_TOKEN} chars/token)"
    max_tokens: int | None = None
    budget: TrainingBudget = OPENAI_BUDGET
    """How a job trains the file by default: the model family's when a model is named."""

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def n_errors(self) -> int:
        """All errors, including those past MAX_PROBLEMS_PER_CODE (a code is always an error or always a warning)."""
        return sum(self.problem_counts[code] for code in {problem.code for problem in self.errors})

    @property
    def n_examples(self) -> int:
        """Examples without errors (the ones training would use)."""
        return len(self.token_counts)

    @property
    def n_epochs(self) -> int:
        """What `n_epochs: "auto"` resolves to for this file."""
        return self.budget.n_epochs(self.n_examples)

    @property
    def trained_tokens(self) -> int:
        """Tokens training would see with the auto epochs, each example truncated to `max_tokens`."""
        return trained_tokens(self.token_counts, n_epochs=self.n_epochs, max_tokens=self.max_tokens)

    def token_stats(self) -> dict[str, float]:
        return _distribution(self.token_counts)

    def message_stats(self) -> dict[str, float]:
        return _distribution(self.message_counts)

    def to_dict(self) -> dict[str, object]:
        return {
            "path": self.path,
            "ok": self.ok,
            "format": self.format,
            "n_lines": self.n_lines,
            "n_examples": self.n_examples,
            "errors": [problem.to_dict() for problem in self.errors],
            "warnings": [problem.to_dict() for problem in self.warnings],
            "problem_counts": self.problem_counts,
            "tokenizer": self.tokenizer,
            "max_tokens": self.max_tokens,
            "tokens_per_example": self.token_stats(),
            "messages_per_example": self.message_stats(),
            "labels": self.labels.to_dict() if self.labels else None,
            "label_parts": self.label_parts.to_dict() if self.label_parts else None,
            "n_epochs": self.n_epochs,
            "n_epochs_rule": self.budget.epochs_rule,
            "trained_tokens": self.trained_tokens,
        }

    def raise_for_errors(self) -> None:
        """Raise DataValidationError carrying the first error (OpenAI's codes: `invalid_n_examples`, else
        `invalid_training_file`) when the report has errors."""
        if self.ok:
            return
        first = self.errors[0]
        code = "invalid_n_examples" if first.code == "invalid_n_examples" else "invalid_training_file"
        more = f" ({len(self.errors) - 1} more errors)" if len(self.errors) > 1 else ""
        raise DataValidationError(f"{first}{more}", code=code)

    def _add(self, problem: Problem, *, error: bool) -> None:
        seen = self.problem_counts.get(problem.code, 0)
        self.problem_counts[problem.code] = seen + 1
        if seen < MAX_PROBLEMS_PER_CODE:
            (self.errors if error else self.warnings).append(problem)


def validate_file(
    path: str | Path,
    *,
    count_tokens: TokenCounter | None = None,
    max_tokens: int | None = None,
    min_examples: int = MIN_EXAMPLES,
    tokenizer_name: str | None = None,
    budget: TrainingBudget = OPENAI_BUDGET,
) -> ValidationReport:
    """Check a fine-tuning JSONL file. `count_tokens` counts a text's tokens (default: the approximation in
    localft.data.tokens); `max_tokens` is the model's per-example limit; `budget` is how a job on the base model
    trains by default. Examples over the smaller of `max_tokens` and the budget's length are warned about."""
    path = Path(path)
    limits = [limit for limit in (max_tokens, budget.max_length) if limit is not None]
    report = ValidationReport(path=str(path), max_tokens=min(limits) if limits else None, budget=budget)
    if count_tokens is not None:
        report.tokenizer = tokenizer_name or "custom"
    try:
        data = path.read_bytes()
    except OSError as exc:
        report._add(Problem(None, "unreadable_file", None, f"cannot read {path}: {exc}", "check the path"), error=True)
        return report
    if not data.strip():
        report._add(
            Problem(None, "empty_file", None, "the file is empty", "write one JSON example per line"), error=True
        )
        return report
    _check_lines(data, report, count_tokens or approx_tokens)
    if report.n_examples < min_examples:
        report._add(
            Problem(
                None,
                "invalid_n_examples",
                None,
                f"Training file has {report.n_examples} example(s), but must have at least {min_examples} examples",
                "add examples; results improve clearly from 50-100 well-chosen examples",
            ),
            error=True,
        )
    return report


def _check_lines(data: bytes, report: ValidationReport, count: TokenCounter) -> None:
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # the final newline does not start another line
    report.n_lines = len(lines)
    first_seen: dict[str, int] = {}
    answers: list[str] = []
    for number, raw in enumerate(lines, start=1):
        obj = _parse_line(number, raw.rstrip(b"\r"), report)
        if obj is None:
            continue
        fmt = example_format(obj)
        found = Findings(number, [], [])
        if fmt is None:
            found.error(
                "missing_messages_list",
                "messages",
                'no "messages" list (nor legacy "prompt"/"completion")',
                'write {"messages": [{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}]}',
            )
        elif report.format is not None and fmt != report.format:
            found.error(
                "mixed_formats",
                None,
                f"this example is in the {fmt} format but earlier lines are in the {report.format} format",
                "write every example in one format (chat is recommended)",
            )
        else:
            report.format = fmt
            (check_chat if fmt == "chat" else check_prompt_completion)(obj, found)
        for problem in found.errors:
            report._add(problem, error=True)
        for problem in found.warnings:
            report._add(problem, error=False)
        if found.errors or fmt is None:
            continue
        _measure(number, obj, fmt, report, count, first_seen, answers)
    if report.format == "prompt_completion":
        report._add(
            Problem(
                None,
                "legacy_format",
                None,
                "legacy prompt/completion format (babbage-002/davinci-002 style): accepted, trained as one user "
                "and one assistant message",
                "prefer the chat format: localft prepare --format chat",
            ),
            error=False,
        )
    if answers:
        report.labels = label_stats(answers)
        report.label_parts = label_parts(answers)
        _check_balance(report.label_parts or report.labels, report)


def _parse_line(number: int, raw: bytes, report: ValidationReport) -> dict[str, Any] | None:
    if not raw.strip():
        report._add(Problem(number, "blank_line", None, "blank line is skipped", "remove empty lines"), error=False)
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        report._add(
            Problem(
                number,
                "invalid_encoding",
                None,
                f"not valid UTF-8: byte 0x{raw[exc.start]:02x} at column {exc.start + 1}",
                "save the file as UTF-8 (for CSV sources: localft prepare --encoding latin-1 ...)",
            ),
            error=True,
        )
        return None
    if number == 1:
        text = text.removeprefix("\ufeff")  # the byte-order mark some Windows editors write
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        report._add(
            Problem(
                number,
                "invalid_json",
                None,
                f"invalid JSON: {exc.msg} at column {exc.colno}",
                "write each example as one complete JSON object on a single line",
            ),
            error=True,
        )
        return None
    if not isinstance(obj, dict):
        kind = "array" if isinstance(obj, list) else type(obj).__name__
        report._add(
            Problem(
                number,
                "data_type",
                None,
                f"each line must be a JSON object, this one is a JSON {kind}",
                'write one object per line: {"messages": [...]}',
            ),
            error=True,
        )
        return None
    return obj


def _measure(
    number: int,
    obj: dict[str, Any],
    fmt: ExampleFormat,
    report: ValidationReport,
    count: TokenCounter,
    first_seen: dict[str, int],
    answers: list[str],
) -> None:
    """Record a valid example's tokens, messages and answer; warn about duplicates and context overflow."""
    key = json.dumps(obj, sort_keys=True, ensure_ascii=False)
    if key in first_seen:
        report._add(
            Problem(
                number,
                "duplicate_example",
                None,
                f"same example as line {first_seen[key]}",
                "remove repeated examples: each copy adds weight to it in training",
            ),
            error=False,
        )
    else:
        first_seen[key] = number
    messages = as_messages(obj, fmt)
    tokens = example_tokens(messages, count)
    if report.max_tokens is not None and tokens > report.max_tokens:
        report._add(
            Problem(
                number,
                "too_many_tokens",
                None,
                f"example has {tokens} tokens, over the {report.max_tokens}-token limit; "
                + (report.budget.cut or f"it will be truncated to {report.max_tokens} tokens"),
                "shorten the text (e.g. a shorter --template) if the part cut matters to the answer",
            ),
            error=False,
        )
    report.token_counts.append(tokens)
    report.message_counts.append(len(messages))
    answer = answer_of(obj, fmt)
    if answer is not None:
        answers.append(answer)


def _check_balance(stats: LabelStats, report: ValidationReport) -> None:
    if not stats.is_classification or stats.imbalance_ratio < IMBALANCE_WARNING_RATIO:
        return
    ordered = list(stats.counts.items())
    (big, n_big), (small, n_small) = ordered[0], ordered[-1]
    report._add(
        Problem(
            None,
            "class_imbalance",
            None,
            f"classes are imbalanced: {big!r} has {n_big} examples, {small!r} only {n_small} "
            f"({stats.imbalance_ratio:.1f}x)",
            "balance the classes, e.g. localft prepare --per-class N or --balanced",
        ),
        error=False,
    )


def _distribution(values: list[int]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, (95 * len(ordered)) // 100)]
    return {
        "min": ordered[0],
        "max": ordered[-1],
        "mean": round(statistics.fmean(ordered), 2),
        "median": statistics.median(ordered),
        "p95": p95,
        "total": sum(ordered),
    }
