"""How every gpucloud command prints: tables for people, JSON for scripts, errors on stderr."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

# Messages carry names and server text: no markup, no highlighting, no wrapping at 80
# columns when stderr is not a terminal (one error stays one line).
stderr = Console(stderr=True, highlight=False, markup=False, soft_wrap=True)


def print_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    """A table on stdout. Cells never wrap: ids and fingerprints are copied from here."""
    table = Table()
    for header in headers:
        table.add_column(header, no_wrap=True)
    for row in rows:
        # Names and messages are data: a "[red]" in them is text, not rich markup.
        table.add_row(*(escape(cell) for cell in row))
    # Piped output is not cut to 80 columns; a terminal gets its own width.
    console = Console() if sys.stdout.isatty() else Console(width=500)
    console.print(table)


def print_json(value: Any) -> None:
    """`value` as indented JSON on stdout."""
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def error(message: str) -> None:
    """One clear line on stderr."""
    stderr.print(Text.assemble(("error:", "red"), " ", message))
