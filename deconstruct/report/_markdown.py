"""The Markdown format: the tables of :mod:`._tables` as pipe tables, under one heading each."""

from __future__ import annotations

from deconstruct.report._model import Report
from deconstruct.report._tables import (
    Table,
    comparison_table,
    configuration_table,
    diagnostic_notes,
    diagnostic_table,
    effect_table,
    importance_table,
    pareto_table,
    summary_line,
)


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


def md_table(table: Table) -> str:
    head = table.head()
    lines = ["| " + " | ".join(_escape(h) for h in head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(_escape(c) for c in row) + " |" for row in table.cells()]
    return "\n".join(lines) + "\n"


def to_markdown(report: Report) -> str:
    out = [f"# deconstruct report: {', '.join(s.name for s in report.studies)}\n"]
    several = len(report.studies) > 1
    if several:
        out += ["## Side by side\n", md_table(comparison_table(report))]
    for s in report.studies:
        level = "###" if several else "##"
        if several:
            out.append(f"## {s.name}\n")
        out.append(summary_line(s) + "\n")
        configs = configuration_table(s)
        out += [f"{level} Configurations\n", md_table(configs)] + [f"_{n}_\n" for n in configs.notes]
        for ae in s.effects:
            table = effect_table(s, ae)
            out += [f"{level} {table.title}\n", md_table(table)]
        out.append(f"{level} Attention diagnostics\n")
        diag = diagnostic_table(s)
        if diag.rows:
            out += [md_table(diag)] + [f"_{n}_\n" for n in diag.notes]
        out += [n + "\n" for n in diagnostic_notes(s)]
        out.append(f"{level} Parameter importances\n")
        imp, table = s.importances, importance_table(s)  # type: ignore[assignment]
        if table is not None and imp is not None:
            out += [md_table(table), f"{imp.evaluator}: {imp.note}.\n"]
        elif imp is not None:
            out.append(f"{imp.note}.\n")
        pareto = pareto_table(s)
        if pareto is not None:
            out += [f"{level} {pareto.title}\n", md_table(pareto)]
        if s.notes:
            out += [f"{level} Notes\n", "\n".join(f"- {n}" for n in s.notes) + "\n"]
    return "\n".join(out)
