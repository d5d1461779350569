"""The terminal format degrades gracefully: at any width the configuration text is wrapped, never dropped
(issue 11: piped or at 80 columns its column used to shrink to zero width), and no line is wider than the
console. Checked on small hand-made tables and on the real report, piped, at 80 columns and without COLUMNS."""

from __future__ import annotations

import io

import pytest
from _support import cli
from rich.cells import cell_len
from rich.console import Console

from deconstruct.report._tables import Column, Table
from deconstruct.report._terminal import Fitted, layout

LABELS = ["mixer.kind=attention, layout=uniform|hybrid", "mixer.kind=mlp, layout=hybrid"]


def table(labels=LABELS) -> Table:
    rows = [{"rank": i + 1, "label": label, "loss": 5.3395 + i, "runs": "2 completed, 1 failed (interrupted)"}
            for i, label in enumerate(labels)]
    return Table("Configurations", [
        Column("#", "rank", lambda r: r["rank"], numeric=True),
        Column("configuration", "configuration", lambda r: r["label"]),
        Column("val_loss (95% CI)", "mean", lambda r: r["loss"], lambda r: f"{r['loss']:.4f} ± 0.5250", numeric=True),
        Column("tokens/s", "tps", lambda r: 5520.0, lambda r: "5.52k", numeric=True),
        Column("runs", None, text=lambda r: r["runs"]),
    ], rows, key=1)


def render(renderable, width: int) -> list[str]:
    buf = io.StringIO()
    Console(file=buf, width=width, no_color=True, soft_wrap=True).print(renderable)
    return buf.getvalue().splitlines()


def test_layouts_by_width():
    t = table()
    # natural widths: 1 + 43 + 17 + 8 + 35 = 104 cells, plus a framed table's 3·5 + 1
    assert layout(t, 120) == ("full", None)
    how, widths = layout(t, 80)
    assert how == "compact" and sum(widths) + len(widths) - 1 <= 80
    assert widths[0] >= 1 and widths[2] >= len("5.3395 ± 0.5250") and widths[3] >= len("tokens/s")
    assert widths[1] >= len("mixer.kind=attention,")  # the name's longest word stays whole
    assert widths[4] >= len("(interrupted)")
    assert layout(t, 50) == ("records", None)  # the numbers alone (1+17+8) and whole words do not fit


@pytest.mark.parametrize("width", [200, 80, 60, 40, 24])
def test_no_line_is_wider_than_the_console_and_every_label_survives(width):
    lines = render(Fitted(table()), width)
    assert all(cell_len(line) <= width for line in lines), "\n".join(lines)
    text = " ".join(" ".join(line.split()) for line in lines)
    for label in LABELS:  # every word of each label is there, in its order
        words = label.split()
        positions = [text.find(w) for w in words]
        assert -1 not in positions and positions == sorted(positions), (label, lines)
    assert any("5.3395 ± 0.5250" in line for line in lines) and any("6.3395" in line for line in lines)


def test_records_put_each_name_on_its_own_line_with_its_values_below():
    lines = render(Fitted(table()), 50)
    assert lines[0] == "Configurations"
    assert lines[1] == "1  mixer.kind=attention, layout=uniform|hybrid"
    assert lines[2] == "   val_loss (95% CI) 5.3395 ± 0.5250 · tokens/s"  # wrapped between words, indented
    assert lines[3:5] == ["   5.52k · runs 2 completed, 1 failed", "   (interrupted)"]
    assert lines[5] == "2  mixer.kind=mlp, layout=hybrid"


def test_rich_markup_in_a_stored_value_is_shown_as_text():
    lines = render(Fitted(table(["mixer.kind=[/bold]x, [red]y[/red]"])), 120)
    assert any("mixer.kind=[/bold]x, [red]y[/red]" in line for line in lines)


@pytest.mark.parametrize("columns", ["80", ""])  # no COLUMNS, piped: rich then assumes 80 columns
def test_the_real_report_piped_at_80_columns_keeps_every_configuration(tiny_study, columns):
    proc = cli.run("report", "tiny-ablation", "--storage", tiny_study["url"], env={"COLUMNS": columns, "LINES": ""},
                   timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    start = lines.index("Configurations")
    section = lines[start + 1:next(i for i, ln in enumerate(lines) if ln.startswith("val_loss: mean ±"))]
    assert all(cell_len(line) <= 80 for line in section), "\n".join(section)
    for label in ("mixer.kind=attention, layout=uniform|hybrid", "mixer.kind=mlp, layout=uniform",
                  "mixer.kind=mlp, layout=hybrid"):
        assert any(label in line for line in section), (label, section)
    assert "2 completed, 1 failed (interrupted)" in " ".join(" ".join(section).split())  # wrapped, not dropped
