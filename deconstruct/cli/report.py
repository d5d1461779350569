"""``deconstruct report``: which principle mattered, by how much, with uncertainty — from the store alone."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from deconstruct import metrics
from deconstruct.cli._common import stderr, stdout
from deconstruct.cli.study import StorageOption

_MAXIMIZED = ", ".join(m.name for m in metrics.all_metrics() if m.direction == "maximize")


class ReportFormat(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"
    markdown = "markdown"
    html = "html"


def report_command(
    names: list[str] = typer.Argument(..., help="Study name(s); two or more are shown side by side.", metavar="NAME..."),
    storage: str = StorageOption,
    by: str = typer.Option(
        None, "--by", metavar="AXIS",
        help="Marginal effect of each value of one searched axis (dotted path, e.g. model.mixer.kind).",
    ),
    baseline: str = typer.Option(
        None, "--baseline", metavar="VALUE",
        help="The --by value to compare against (default: the standard-attention value, e.g. attention/uniform).",
    ),
    metric: str = typer.Option(
        None, "--metric", metavar="NAME",
        help="Report this per-run value instead of the first objective: any dc_run column (val_loss, params, "
             "tokens_per_second, ...) or key of the run's metrics (skip_block_val_loss: the skip evaluation with "
             "the relaxed layers removed; bits_per_byte). Direction: the study's if NAME is an objective, else the "
             f"metric's own (maximize: {_MAXIMIZED}; minimize: every other, losses, bits_per_byte, params, "
             "flops, seconds). Curves show NAME if it was recorded per step, else val_loss. Importances and the "
             "Pareto front stay on the study's objectives.",
    ),
    format: ReportFormat = typer.Option(ReportFormat.table, "--format", "-f", help="table, csv, json, markdown or html."),
    out: Path = typer.Option(None, "--out", "-o", help="Write to FILE instead of stdout (use with --format html)."),
) -> None:
    """Report a study: every configuration with mean ± 95% CI over seeds and its cost, the effect of each
    searched axis against a baseline, parameter importances and (multi-objective) the Pareto front.

    \b
    Examples:
      deconstruct report quickstart
      deconstruct report quickstart --by model.mixer.kind
      deconstruct report quickstart --metric skip_block_val_loss --by model.mixer.kind
      deconstruct report quickstart --by model.layout --baseline hybrid --format csv > layout.csv
      deconstruct report quickstart --format html --out quickstart.html
      deconstruct report quickstart principles        # two studies side by side
    """
    from deconstruct.report import build_report, render

    report = build_report(list(names), storage, by=by, baseline=baseline, metric=metric)
    result = render(report, format.value)
    if format == ReportFormat.table:
        if out is None:
            for item in result:
                stdout.print(item)
            return
        from rich.console import Console

        with out.open("w", encoding="utf-8") as f:
            console = Console(file=f, width=200, no_color=True, soft_wrap=False, markup=False)
            for item in result:
                console.print(item)
    elif out is None:
        typer.echo(result, nl=False)
        return
    else:
        out.write_text(result, encoding="utf-8")
    stderr.print(f"wrote {out}")


def register(app: typer.Typer) -> None:
    app.command("report")(report_command)
