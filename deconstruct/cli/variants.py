"""``deconstruct variants list``: every registered mixer, channel mixer and task, with its paper."""

from __future__ import annotations

from enum import Enum
from typing import Any

import typer

from deconstruct.cli._common import TableFormat, print_json, stdout

variants_app = typer.Typer(help="Registered variants (mixers, channel mixers, tasks).", no_args_is_help=True)


class KindChoice(str, Enum):
    mixer = "mixer"
    channel_mixer = "channel_mixer"
    task = "task"


def _options_of(entry: Any) -> dict[str, Any]:
    model = entry.options
    if model is None:
        return {}
    out = {}
    for name, field in model.model_fields.items():
        default = field.default if field.default_factory is None else field.default_factory()
        out[name] = {"type": getattr(field.annotation, "__name__", str(field.annotation)).replace("typing.", ""),
                     "default": default, "description": field.description or ""}
    return out


def variant_rows(kind: str | None = None) -> list[dict[str, Any]]:
    from deconstruct.plugins import get_registry

    reg = get_registry()
    rows = []
    for k in ("mixer", "channel_mixer", "task") if kind is None else (kind,):
        for name in reg.names(k):
            e = reg.entries[k][name]
            row: dict[str, Any] = {"kind": k, "name": name, "plugin": e.plugin, "summary": e.summary, "paper": e.paper}
            if e.preset is not None:
                row["preset"] = dict(e.preset)
                base, _ = reg.resolve_mixer(name)
                row["options"] = _options_of(base)
            else:
                row["options"] = _options_of(e)
            if k == "mixer":
                row["patterns"] = list(e.patterns) if e.preset is None else list(reg.resolve_mixer(name)[0].patterns)
            rows.append(row)
    return rows


@variants_app.command("list")
def list_variants(
    kind: KindChoice = typer.Option(None, "--kind", help="Only this kind."),
    format: TableFormat = typer.Option(TableFormat.table, "--format", "-f"),
) -> None:
    """List registered variants: name, plugin, summary, options, paper.

    \b
    Examples:
      deconstruct variants list
      deconstruct variants list --kind mixer --format json
    """
    rows = variant_rows(kind.value if kind else None)
    if format == TableFormat.json:
        print_json(rows)
        return
    from rich.table import Table

    table = Table()
    for col in ("kind", "name", "what it is", "options / preset", "plugin", "paper"):
        table.add_column(col, overflow="fold")
    for r in rows:
        if "preset" in r:
            opts = "= " + ", ".join(f"{k}: {v}" for k, v in r["preset"].items())
        else:
            opts = ", ".join(f"{k}={v['default']}" for k, v in r["options"].items())
        plugin = "built-in" if r["plugin"].startswith("deconstruct.builtin") else r["plugin"]
        table.add_row(r["kind"], r["name"], r["summary"], opts, plugin, r["paper"])
    stdout.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(variants_app, name="variants")
