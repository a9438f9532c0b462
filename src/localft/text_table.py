"""Tables as plain text, laid out by `rich`: what `localft prepare`, `validate`, `eval`, `compare` and `teach` print
and what their Markdown-free reports hold. Two spaces between columns, numbers right-aligned where asked, no
wrapping and no trailing spaces, so the output reads the same in a terminal, a log and a test."""

from __future__ import annotations

import io
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

_UNWRAPPED = 1_000_000
"""Console width for rendering: wide enough that no cell ever wraps."""


def text_table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], *, numeric: Sequence[bool] = (), rule: bool = False
) -> str:
    """`rows` of cells (already formatted) under `headers`; `numeric[i]` right-aligns column i; `rule` puts a line
    of dashes under the headers."""
    table = Table(box=None, pad_edge=False, show_edge=False, show_header=True, padding=(0, 1), header_style="")
    for i, header in enumerate(headers):
        table.add_column(header, justify="right" if i < len(numeric) and numeric[i] else "left", no_wrap=True)
    if rule:
        widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]
        table.add_row(*("-" * width for width in widths))
    for row in rows:
        table.add_row(*row)
    buffer = io.StringIO()
    Console(file=buffer, width=_UNWRAPPED, color_system=None, highlight=False).print(table, crop=False)
    return "\n".join(line.rstrip() for line in buffer.getvalue().splitlines())
