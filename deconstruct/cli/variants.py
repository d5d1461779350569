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


def _type_name(annotation: Any) -> str:
    name = getattr(annotation, "__name__", None)
    text = name if name and not getattr(annotation, "__args__", None) else str(annotation)
    return text.replace("typing.", "").replace("NoneType", "None")


def options_of(options_model: Any) -> dict[str, Any]:
    """{option: {type, default, required, description}} of a pydantic options model."""
    if options_model is None:
        return {}
    out = {}
    for name, field in options_model.model_fields.items():
        required = field.is_required()
        default = None if required else field.get_default(call_default_factory=True)
        out[name] = {"type": _type_name(field.annotation), "default": default, "required": required,
                     "description": field.description or ""}
    return out


def variant_rows(kind: str | None = None) -> list[dict[str, Any]]:
    from deconstruct.plugins import KINDS, get_registry

    reg = get_registry()
    rows = []
    for k in KINDS:
        if kind is not None and k != kind:
            continue
        for name in reg.names(k):
            e = reg.entries[k][name]
            row: dict[str, Any] = {"kind": k, "name": name, "plugin": e.plugin,
                                   "plugin_version": reg.plugin_version(e.plugin), "builtin": reg.is_builtin(e.plugin),
                                   "summary": e.doc, "paper": e.paper}
            if e.preset is not None:
                base, fixed = reg.resolve_mixer(name)
                row["preset"] = dict(e.preset)
                row["base"] = base.name
                row["fixed"] = fixed
                row["options"] = {k2: v for k2, v in options_of(base.options).items() if k2 not in fixed}
                row["patterns"] = list(base.patterns)
            else:
                row["options"] = options_of(e.options)
                if k == "mixer":
                    row["patterns"] = list(e.patterns)
            rows.append(row)
    return rows


def _options_text(row: dict[str, Any]) -> str:
    if "preset" in row:  # what the preset fixes; its base's row lists the options left free
        fixed = ", ".join(f"{k}={v}" for k, v in row["fixed"].items())
        return f"= {row['base']}" + (f" with {fixed}" if fixed else "")
    return ", ".join(f"{k}" if v["required"] else f"{k}={v['default']}" for k, v in row["options"].items())


KIND_TITLES = {"mixer": "mixers (model.mixer.kind)", "channel_mixer": "channel mixers (model.channel_mixer)",
               "task": "tasks (task.name)"}


@variants_app.command("list")
def list_variants(
    kind: KindChoice = typer.Option(None, "--kind", help="Only this kind: mixer, channel_mixer or task."),
    format: TableFormat = typer.Option(TableFormat.table, "--format", "-f", help="table or json"),
) -> None:
    """List registered variants: name, what it is, its options (with defaults), paper and plugin.

    \b
    Examples:
      deconstruct variants list
      deconstruct variants list --kind mixer --format json
    """
    rows = variant_rows(kind.value if kind else None)
    if format == TableFormat.json:
        print_json(rows)
        return
    from rich import box
    from rich.table import Table
    from rich.text import Text

    for k in (kind.value,) if kind else ("mixer", "channel_mixer", "task"):
        group = [r for r in rows if r["kind"] == k]
        if not group:
            continue
        table = Table(title=KIND_TITLES[k], title_justify="left", title_style="bold", box=box.SIMPLE_HEAD,
                      pad_edge=False, show_lines=False, expand=False)
        table.add_column("name", no_wrap=True, style="bold")
        table.add_column("what it is · options · paper", ratio=1)
        table.add_column("plugin", no_wrap=True)
        for r in group:
            text = Text(r["summary"] or "—")
            opts = _options_text(r)
            if opts:
                text.append("\n" + opts, style="cyan")
            if r["paper"]:
                text.append("\n" + r["paper"], style="dim")
            plugin = "built-in" if r["builtin"] else f"{r['plugin']} {r['plugin_version']}"
            table.add_row(r["name"], text, plugin)
            table.add_section()
        stdout.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(variants_app, name="variants")
