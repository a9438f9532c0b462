"""Plain-text tables for people: what `prepare` did and what `validate` found. Scripts use `to_dict()` instead."""

from __future__ import annotations

from collections.abc import Sequence

from localft.data.checks import Problem
from localft.data.labels import LabelStats
from localft.data.prepare import Prepared
from localft.data.validate import ValidationReport
from localft.text_table import text_table

# Problems listed per severity before the rest is summed up in one line.
SHOWN_PROBLEMS = 20
# Classes listed in the validation summary before the rest is summed up (Banking77 has 77).
SHOWN_CLASSES = 20


def render_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Columns padded to their widest cell; numbers right-aligned, text left-aligned."""
    numeric = [all(isinstance(row[i], int | float) for row in rows) and bool(rows) for i in range(len(headers))]
    return text_table([str(h) for h in headers], [[_cell(value) for value in row] for row in rows], numeric=numeric)


def prepare_summary(prepared: Prepared) -> str:
    """Rows in and out, examples per class per split, and every dropped or unused row with the reason."""
    opts = prepared.options
    kind = "multi-label" if opts.multi_label else "single-label"
    parts = [
        f"Read {prepared.rows_in} rows from {prepared.source.name}; "
        f"kept {prepared.rows_out} examples ({opts.output_format}, {kind}, {len(prepared.labels)} labels)."
    ]
    counts = prepared.class_counts()
    names = list(prepared.splits)
    classes = sorted({label for split in counts.values() for label in split}, key=lambda c: (-_total(counts, c), c))
    rows: list[list[object]] = [[c, *(counts[n].get(c, 0) for n in names), _total(counts, c)] for c in classes]
    rows.append(["rows", *(len(prepared.splits[n]) for n in names), prepared.rows_out])
    parts.append(render_table(["class", *names, "total"], rows))
    if prepared.dropped:
        dropped = [
            [reason, count, ", ".join(map(str, prepared.dropped_lines.get(reason, [])))]
            for reason, count in sorted(prepared.dropped.items(), key=lambda item: -item[1])
        ]
        table = render_table(["reason", "rows", "first lines"], dropped)
        parts.append(f"Dropped {sum(prepared.dropped.values())} rows:\n{table}")
    else:
        parts.append("Dropped 0 rows.")
    if prepared.unused:
        unused = [[reason, count] for reason, count in prepared.unused.items()]
        parts.append(f"Left out {sum(prepared.unused.values())} rows:\n" + render_table(["reason", "rows"], unused))
    return "\n\n".join(parts)


def validation_summary(report: ValidationReport) -> str:
    """Problems with lines and fixes, token and message statistics, labels, and the auto training budget."""
    fmt = report.format or "unknown format"
    parts = [f"{report.path}: {report.n_examples} valid examples of {report.n_lines} lines ({fmt})"]
    for title, problems in (("errors", report.errors), ("warnings", report.warnings)):
        if problems:
            parts.append(_problems(title, problems, report))
    if report.token_counts:
        stats = [("tokens per example", report.token_stats()), ("messages per example", report.message_stats())]
        keys = ["min", "median", "mean", "p95", "max", "total"]
        rows: list[list[object]] = [[name, *(values[k] for k in keys)] for name, values in stats]
        parts.append(f"Tokens counted with {report.tokenizer}:\n" + render_table(["", *keys], rows))
    if report.label_parts:
        parts.append(
            f"Multi-label answers: {report.labels.n_classes if report.labels else 0} distinct combinations; "
            f"per label (answers split on ','), largest/smallest = {report.label_parts.imbalance_ratio:.2f}\n"
            + _label_table(report.label_parts, "label")
        )
    elif report.labels and report.labels.is_classification:
        parts.append(
            f"Labels: {report.labels.n_classes} classes, largest/smallest = {report.labels.imbalance_ratio:.2f}\n"
            + _label_table(report.labels, "answer")
        )
    elif report.labels:
        parts.append(f"Answers: {report.labels.n_classes} distinct of {report.labels.n_examples} (free text).")
    if report.n_examples:
        limit = f", each truncated to {report.max_tokens}" if report.max_tokens else ""
        parts.append(
            f'n_epochs "auto" = {report.n_epochs} ({report.budget.epochs_rule}); training would see '
            f"{report.trained_tokens} tokens ({report.n_epochs} epochs x {report.n_examples} examples{limit})."
        )
    plural = "" if report.n_errors == 1 else "s"
    parts.append("OK: ready for fine-tuning." if report.ok else f"FAILED: {report.n_errors} error{plural}.")
    return "\n\n".join(parts)


def _label_table(labels: LabelStats, header: str) -> str:
    shown = list(labels.counts.items())[:SHOWN_CLASSES]
    share = [[label, count, f"{100 * count / labels.n_examples:.1f}%"] for label, count in shown]
    hidden = labels.n_classes - len(shown)
    more = f"\n... and {hidden} more" if hidden > 0 else ""
    return render_table([header, "examples", "share"], share) + more


def _problems(title: str, problems: list[Problem], report: ValidationReport) -> str:
    codes = {problem.code for problem in problems}
    total = sum(report.problem_counts.get(code, 0) for code in codes)
    lines = [f"{title.capitalize()} ({total}):"]
    for problem in problems[:SHOWN_PROBLEMS]:
        where = f"line {problem.line}" if problem.line is not None else "file"
        lines.append(f"  {where}: [{problem.code}] {problem.message}\n      fix: {problem.fix}")
    if total > SHOWN_PROBLEMS:
        lines.append(f"  ... and {total - SHOWN_PROBLEMS} more")
    return "\n".join(lines)


def _total(counts: dict[str, dict[str, int]], label: str) -> int:
    return sum(split.get(label, 0) for split in counts.values())


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.2f}".rstrip("0").rstrip(".") if value != int(value) else str(int(value))
    return str(value)
