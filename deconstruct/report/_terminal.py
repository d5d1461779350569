"""The terminal format (``--format table``): rich renderables that fit the console they are printed on.

Each :class:`~._tables.Table` is laid out when rich knows the width (a terminal's, ``$COLUMNS``, or 80 when
piped), in the first of three ways that fits:

1. ``full``: the framed table, no cell wrapped;
2. ``compact``: no frame, one space between columns; numbers never wrap (a long heading wraps at its
   spaces), text columns wrap between words, each at least as wide as its longest word (up to
   :data:`WORD_CAP`) and :data:`KEY_FLOOR` (the configuration) or :data:`TEXT_FLOOR`;
3. ``records``: one block per row, its name on a line of its own and then ``heading value`` pairs, wrapped.

So the configuration text is wrapped, never dropped, whatever the width. Every cell is shown as text (rich
markup in stored values is not interpreted).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from rich import box
from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderResult
from rich.table import Table as RichTable
from rich.text import Text

from deconstruct.report._model import Report
from deconstruct.report._tables import Table, comparison_table, study_tables

KEY_FLOOR = 16  #: narrowest width the row's name (the configuration) is wrapped to before ``records``
TEXT_FLOOR = 8  #: narrowest width any other text column is wrapped to
WORD_CAP = 24  #: a text column holds its longest word unbroken up to this many cells (longer ones fold)


def _longest_word(text: str) -> int:
    return max((cell_len(w) for w in text.split()), default=0)


def layout(table: Table, width: int) -> tuple[str, list[int] | None]:
    """How ``table`` fits ``width`` cells: ``("full", None)``, ``("compact", column widths)`` or
    ``("records", None)`` (see the module docstring)."""
    head, cells, numeric = table.head(), table.cells(), table.numeric()
    n = len(head)
    natural = [max([cell_len(head[i])] + [cell_len(r[i]) for r in cells]) for i in range(n)]
    if sum(natural) + 3 * n + 1 <= width:  # a heavy-headed box: n + 1 rules and one space each side of a cell
        return "full", None
    least = []
    for i in range(n):
        if i in numeric:  # a number never wraps; its heading may, at spaces
            least.append(max([_longest_word(head[i])] + [cell_len(r[i]) for r in cells]))
        else:  # whole words (up to WORD_CAP cells) and at least the floor
            word = min(WORD_CAP, max(_longest_word(r[i]) for r in [head] + cells))
            least.append(min(natural[i], max(word, KEY_FLOOR if i == table.key else TEXT_FLOOR)))
    room = width - (n - 1)  # compact: one space between columns
    if sum(least) > room:
        return "records", None
    spare, short = room - sum(least), [natural[i] - least[i] for i in range(n)]
    if sum(short) <= spare:
        return "compact", natural
    widths = [least[i] + short[i] * spare // sum(short) for i in range(n)]
    for i in sorted(range(n), key=lambda i: (i != table.key, i)):  # what rounding left: the name first
        widths[i] += max(0, min(natural[i] - widths[i], room - sum(widths)))
    return "compact", widths


class Fitted:
    """A :class:`~._tables.Table` that lays itself out for the console's width when rich renders it."""

    def __init__(self, table: Table, title: str | None = None):
        self.table, self.title = table, table.title if title is None else title

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        how, widths = layout(self.table, options.max_width)
        if how == "records":
            yield from self._records(console, options.max_width)
            return
        compact = how == "compact"
        t = RichTable(title=Text(self.title), title_justify="left", title_style="bold",
                      box=box.SIMPLE_HEAD if compact else box.HEAVY_HEAD, show_edge=not compact,
                      padding=(0, 0) if compact else (0, 1))
        numeric = self.table.numeric()
        for i, h in enumerate(self.table.head()):
            t.add_column(Text(h), justify="right" if i in numeric else "left", overflow="fold",
                         no_wrap=i in numeric and not compact, width=widths[i] if widths else None)
        rows = self.table.cells()
        for i, r in enumerate(rows):
            first = r[0]
            if self.table.group and i > 0 and rows[i - 1][0] == r[0]:
                first = ""
            last = self.table.group and (i + 1 == len(rows) or rows[i + 1][0] != r[0])
            t.add_row(*(Text(c) for c in [first] + r[1:]), end_section=last)
        yield t

    def _records(self, console: Console, width: int) -> Iterator[Text]:
        head, key = self.table.head(), self.table.key
        yield from self._wrap(console, Text(self.title, style="bold"), width)
        previous = None
        for r in self.table.cells():
            name = "  ".join(c for c in r[:key + 1] if c)
            if not (self.table.group and name == previous):
                yield from self._wrap(console, Text(name), width)
            previous = name
            fields = " · ".join(f"{h} {c}" for h, c in zip(head[key + 1:], r[key + 1:], strict=True) if c)
            yield from self._wrap(console, Text(fields), width, indent=3)

    @staticmethod
    def _wrap(console: Console, text: Text, width: int, indent: int = 0) -> Iterator[Text]:
        """``text`` as lines of at most ``width`` cells (words first, folded when one is longer)."""
        for line in text.wrap(console, max(1, width - indent), overflow="fold"):
            line.rstrip()
            yield Text(" " * indent) + line


def _notes(lines: list[str], style: str = "dim") -> list[Any]:
    return [Text(n, style=style) for n in lines]


def rich_renderables(report: Report) -> list[Any]:
    """Rich tables and lines for the terminal (``--format table``)."""
    out: list[Any] = []
    if len(report.studies) > 1:
        out.append(Fitted(comparison_table(report)))
    for s in report.studies:
        t = study_tables(s)
        out.append(Text(f"\n{s.name}", style="bold underline"))
        out.append(Text(t.summary, style="dim"))
        out += [Fitted(t.configurations), *_notes(t.configurations.notes)]
        out += [x for table in t.effects for x in (Fitted(table), *_notes(table.notes))]
        out += [x for table in t.interactions for x in (Fitted(table), *_notes(table.notes))]
        if t.diagnostics.rows:
            out += [Fitted(t.diagnostics), *_notes(t.diagnostics.notes)]
        out += _notes(t.diagnostic_notes)
        if t.importances is not None:
            out += [Fitted(t.importances), *_notes(t.importances.notes)]
        elif s.importances is not None:
            out.append(Text(f"Parameter importances: {s.importances.note}.", style="dim"))
        if t.pareto is not None:
            out.append(Fitted(t.pareto))
        out += [Fitted(t.code), *_notes(t.code.notes, style="yellow")]
        out += _notes([f"note: {n}" for n in s.notes], style="yellow")
    return out
