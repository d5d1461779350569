"""The Markdown format: the tables of :mod:`._tables` as pipe tables, under one heading each."""

from __future__ import annotations

from deconstruct.report._model import Report
from deconstruct.report._tables import Table, comparison_table, study_tables


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
        t = study_tables(s)
        out.append(t.summary + "\n")
        out += [f"{level} Configurations\n", md_table(t.configurations)] + [f"_{n}_\n" for n in t.configurations.notes]
        for table in [*t.effects, *t.interactions]:
            out += [f"{level} {table.title}\n", md_table(table)] + [f"_{n}_\n" for n in table.notes]
        out.append(f"{level} Attention diagnostics\n")
        if t.diagnostics.rows:
            out += [md_table(t.diagnostics)] + [f"_{n}_\n" for n in t.diagnostics.notes]
        out += [n + "\n" for n in t.diagnostic_notes]
        out.append(f"{level} Parameter importances\n")
        imp = s.importances
        if t.importances is not None and imp is not None:
            out += [md_table(t.importances), f"{imp.evaluator}: {imp.note}.\n"]
        elif imp is not None:
            out.append(f"{imp.note}.\n")
        if t.pareto is not None:
            out += [f"{level} {t.pareto.title}\n", md_table(t.pareto)]
        out += [f"{level} {t.code.title}\n", md_table(t.code)] + [f"_{n}_\n" for n in t.code.notes]
        if s.notes:
            out += [f"{level} Notes\n", "\n".join(f"- {n}" for n in s.notes) + "\n"]
    return "\n".join(out)
