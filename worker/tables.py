"""Grids shown to people: tables fitted to the terminal (rich), or CSV.

Each read becomes one or more :class:`Grid` (worker/read/grids.py): a title, typed columns and
the raw values. :func:`fit` lays a grid out in a width and never wraps or cuts an id: it first
truncates the middle of free-text columns (models, endpoints, errors, breakdowns) and wraps
prose (a dead letter's reason) at its spaces over more lines, writes times shorter and leaves out
the least important columns (naming them under the table), then shortens long ids to their last
characters (``…3f9c2d1e``, which ``query session`` accepts), and only then leaves out more
columns. Piped output is not fitted (no width is imposed on a file) unless
``COLUMNS`` says otherwise.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import IO, Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel
from rich.console import Console
from rich.table import Table
from rich.text import Text


@runtime_checkable
class TokenUsage(Protocol):
    """A token usage (worker/read/models.py): a cell shows its total."""

    total_tokens: int


#: id: never cut (shortened to its tail at most); text: may lose its middle; label: a word from a
#: fixed set (a status), never cut; number, flag: never cut; time: may drop its year and fraction;
#: prose: a sentence, wrapped at its spaces over more lines, never cut mid-word.
Kind = Literal["id", "text", "label", "number", "time", "flag", "prose"]

#: Columns whose ``drop`` is below this are left out before ids are shortened; the others after.
KEEP_IDS_OVER = 3
#: Shortened ids keep this many trailing characters (UUIDv7s differ in their random tail).
SHORT_ID = 8
ELLIPSIS = "…"
_MIN_TEXT = 8  # a squeezed text column keeps at least this many characters


@dataclass(frozen=True)
class Column:
    header: str
    kind: Kind = "text"
    #: Columns with the lowest value are left out first when even squeezed they do not fit;
    #: None: never left out.
    drop: int | None = None


@dataclass(frozen=True)
class Grid:
    title: str
    columns: tuple[Column, ...]
    rows: tuple[tuple[Any, ...], ...]
    #: A two-column table of (field, value) pairs: drawn without a header, and in CSV one row
    #: with the fields as the header.
    pairs: bool = False


# -- cells ---------------------------------------------------------------------------------------


def cell_text(value: Any, compact: bool = False) -> str:
    """What a table shows for ``value`` (one line: newlines in error texts become spaces)."""
    if value is None:
        return "-"
    if isinstance(value, datetime):
        stamp = value.astimezone(UTC)
        if compact:
            return stamp.strftime("%m-%d %H:%M:%S")
        return stamp.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, TokenUsage):
        return f"{value.total_tokens:,}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {cell_text(v)}" for k, v in value.items()) or "-"
    return " ".join(str(value).split())


def csv_text(value: Any) -> str:
    """What CSV holds for ``value``: machine-readable (ISO times, plain numbers, JSON objects)."""
    if value is None:
        return ""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, TokenUsage):
        return str(value.total_tokens)
    if isinstance(value, dict):
        return json.dumps({k: v.model_dump() if isinstance(v, BaseModel) else v for k, v in value.items()})
    return str(value)


def middle(text: str, width: int) -> str:
    """``text`` in at most ``width`` characters, its middle replaced by an ellipsis."""
    if len(text) <= width:
        return text
    if width <= 1:
        return ELLIPSIS[:width]
    head = width // 2
    tail = width - 1 - head
    return text[:head] + ELLIPSIS + (text[-tail:] if tail else "")


def short_id(text: str) -> str:
    return text if len(text) <= SHORT_ID + 1 else ELLIPSIS + text[-SHORT_ID:]


# -- fitting -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fitted:
    """A grid laid out for a width: the columns kept, their widths and their cells as text."""

    title: str
    headers: tuple[str, ...]
    kinds: tuple[Kind, ...]
    widths: tuple[int, ...]
    rows: tuple[tuple[str, ...], ...]
    left_out: tuple[str, ...]
    pairs: bool


def table_width(widths: Sequence[int]) -> int:
    """Characters a rich table with the default box takes for columns of these widths."""
    return sum(widths) + 3 * len(widths) + 1


def fit(grid: Grid, width: int | None) -> Fitted:
    """Lay ``grid`` out in ``width`` characters (None: as wide as it needs)."""
    kept = list(range(len(grid.columns)))
    compact = False
    shortened = False
    while True:
        cells = [[_shown(grid.columns[i], row[i], compact, shortened) for i in kept] for row in grid.rows]
        longest = [max([0, *(len(r[j]) for r in cells)]) for j in range(len(kept))]
        headers = [0 if grid.pairs else len(grid.columns[i].header) for i in kept]
        natural = [max(pair) for pair in zip(longest, headers, strict=True)]
        if width is None or table_width(natural) <= width:
            return _fitted(grid, kept, natural, cells)
        squeezed = _squeeze(grid, kept, natural, longest, width)
        if table_width(squeezed) <= width:
            return _fitted(grid, kept, squeezed, cells)
        droppable = sorted(
            (c.drop, i) for i, c in enumerate(grid.columns) if i in kept and c.drop is not None
        )
        if not compact and any(grid.columns[i].kind == "time" for i in kept):
            compact = True
        elif droppable and droppable[0][0] < KEEP_IDS_OVER:
            kept.remove(droppable[0][1])
        elif not shortened and any(grid.columns[i].kind == "id" for i in kept):
            shortened = True
        elif droppable:
            kept.remove(droppable[0][1])
        else:
            return _fitted(grid, kept, squeezed, cells)  # as narrow as it gets


def _shown(column: Column, value: Any, compact: bool, shortened: bool) -> str:
    text = cell_text(value, compact=compact and column.kind == "time")
    if shortened and column.kind == "id" and value is not None:
        return short_id(text)
    return text


def _squeeze(grid: Grid, kept: list[int], natural: list[int], longest: list[int], width: int) -> list[int]:
    """Narrow columns one character at a time, down to their floor: a header may
    wrap at its spaces (it needs its longest word), a text cell may lose its middle (down to
    a few characters), nothing else may be cut."""
    widths = list(natural)
    floors = []
    for j, i in enumerate(kept):
        column = grid.columns[i]
        word = 0 if grid.pairs else max(len(w) for w in column.header.split())
        cells = min(longest[j], _MIN_TEXT) if column.kind in ("text", "prose") else longest[j]
        floors.append(max(word, cells))
    excess = table_width(widths) - width
    while excess > 0:
        candidates = [j for j in range(len(widths)) if widths[j] > floors[j]]
        if not candidates:
            break
        # The least important first (the lowest ``drop``; never-dropped ones last), widest first.
        order = {j: grid.columns[i].drop for j, i in enumerate(kept)}
        widest = min(candidates, key=lambda j: (order[j] is None, order[j] or 0, -widths[j]))
        widths[widest] -= 1
        excess -= 1
    return widths


def _fitted(grid: Grid, kept: list[int], widths: list[int], cells: list[list[str]]) -> Fitted:
    return Fitted(
        title=grid.title,
        headers=tuple(grid.columns[i].header for i in kept),
        kinds=tuple(grid.columns[i].kind for i in kept),
        widths=tuple(widths),
        rows=tuple(
            tuple(
                text if grid.columns[i].kind == "prose" else middle(text, w)
                for text, w, i in zip(row, widths, kept, strict=True)
            )
            for row in cells
        ),
        left_out=tuple(c.header for i, c in enumerate(grid.columns) if i not in kept),
        pairs=grid.pairs,
    )


def to_rich(fitted: Fitted) -> Table:
    caption = None
    if fitted.left_out:
        caption = f"not shown: {', '.join(fitted.left_out)} (widen the terminal, or --json / --csv)"
    table = Table(
        title=fitted.title,
        title_justify="left",
        caption=caption,
        caption_justify="left",
        show_header=not fitted.pairs,
    )
    for header, kind, w in zip(fitted.headers, fitted.kinds, fitted.widths, strict=True):
        table.add_column(header, width=w, justify="right" if kind == "number" else "left", overflow="fold")
    for row in fitted.rows:
        table.add_row(*(Text(text, style="dim") if text == "-" else Text(text) for text in row))
    return table


def terminal_width(console: Console) -> int | None:
    """The terminal's width; for a pipe or a file none (no table is squeezed) unless COLUMNS says."""
    if console.is_terminal:
        return console.width
    columns = os.environ.get("COLUMNS", "")
    return int(columns) if columns.isdigit() and int(columns) > 0 else None


def print_tables(grids: Sequence[Grid], console: Console, width: int | None) -> None:
    """Draw ``grids`` fitted to ``width`` (None: natural widths, for a file or a pipe)."""
    for grid in grids:
        fitted = fit(grid, width)
        # Exactly the table's width: rich would otherwise squeeze it into its own idea of the
        # terminal (80 columns for a pipe), or pad every line to a wider one.
        console.width = max(table_width(fitted.widths), min(len(grid.title), width or len(grid.title)))
        console.print(to_rich(fitted))


def write_csv(grids: Sequence[Grid], out: IO[str]) -> None:
    """One CSV table per grid (header row, then rows); grids after the first follow an empty line."""
    writer = csv.writer(out, lineterminator="\n")
    for index, grid in enumerate(grids):
        if index:
            out.write("\n")
        if grid.pairs:
            writer.writerow([name.strip() for name, _ in grid.rows])
            writer.writerow([csv_text(value) for _, value in grid.rows])
            continue
        writer.writerow([c.header for c in grid.columns])
        writer.writerows([csv_text(v) for v in row] for row in grid.rows)
