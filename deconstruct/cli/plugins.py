"""``deconstruct plugins list``: installed plugins, their versions and hooks, and any that failed."""

from __future__ import annotations

from typing import Any

import typer

from deconstruct.cli._common import TableFormat, print_json, stdout

plugins_app = typer.Typer(help="Installed plugins.", no_args_is_help=True)


def plugin_rows(all_: bool = False) -> list[dict[str, Any]]:
    """One row per plugin (working or disabled); built-ins only with ``all_``."""
    from deconstruct.plugins import get_registry

    reg = get_registry()
    rows = [
        {"name": p.name, "version": p.version, "package": p.package, "module": p.module, "builtin": p.builtin,
         "hooks": p.hooks, "status": "ok", "error": None}
        for p in reg.plugins.values()
        if all_ or not p.builtin
    ]
    import os

    from deconstruct.plugins import LOAD_ENV

    rows += [{"name": p.name, "version": p.version, "package": p.package, "module": p.module, "builtin": False,
              "hooks": [], "status": "excluded", "error": f"not loaded: {LOAD_ENV}={os.environ.get(LOAD_ENV, '')!r}"}
             for p in reg.excluded.values()]
    known = {r["name"]: r for r in rows}
    for name, why in sorted(reg.broken.items()):
        if name in known:  # loaded, then disabled by a hook that raised
            known[name].update(status="disabled", error=why)
        elif all_ or not name.startswith("deconstruct.builtin"):
            rows.append({"name": name, "version": "?", "package": "", "module": "", "builtin": False,
                         "hooks": [], "status": "disabled", "error": why})
    return rows


@plugins_app.command("list")
def list_plugins(
    all_: bool = typer.Option(False, "--all", metavar="", help="Include the built-in plugins."),
    format: TableFormat = typer.Option(TableFormat.table, "--format", "-f", help="table or json"),
) -> None:
    """List plugins found through the ``deconstruct`` entry-point group (and the built-ins with --all).

    A plugin that failed to load is listed as disabled, with the reason. Set
    DECONSTRUCT_LOAD_PLUGINS=name1,name2 to load only those plugins (empty: none).

    \b
    Examples:
      deconstruct plugins list
      deconstruct plugins list --all --format json
    """
    rows = plugin_rows(all_)
    if format == TableFormat.json:
        print_json(rows)
        return
    if not rows:
        stdout.print("no third-party plugins installed (--all lists the built-ins; see plugins/README.md to write one)")
        return
    from rich import box
    from rich.table import Table
    from rich.text import Text

    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("name", no_wrap=True)
    table.add_column("version", no_wrap=True)
    table.add_column("hooks (register_…)")
    table.add_column("status", overflow="fold")
    for r in rows:
        hooks = ", ".join(h.removeprefix("register_") for h in r["hooks"]) or "—"
        if r["status"] == "ok":
            status = Text("ok")
        else:
            status = Text.assemble((r["status"], "red" if r["status"] == "disabled" else "yellow"), f": {r['error']}")
        table.add_row(r["name"], r["version"], hooks, status)
    stdout.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(plugins_app, name="plugins")
