"""``deconstruct plugins list``: installed plugins, their versions and hooks."""

from __future__ import annotations

import typer

from deconstruct.cli._common import TableFormat, print_json, stdout

plugins_app = typer.Typer(help="Installed plugins.", no_args_is_help=True)


@plugins_app.command("list")
def list_plugins(
    all_: bool = typer.Option(False, "--all", help="Include the built-in plugins."),
    format: TableFormat = typer.Option(TableFormat.table, "--format", "-f"),
) -> None:
    """List plugins found through the ``deconstruct`` entry point group (and built-ins with --all).

    \b
    Examples:
      deconstruct plugins list
      deconstruct plugins list --all --format json
    """
    from deconstruct.plugins import get_registry

    reg = get_registry()
    rows = [
        {"name": p.name, "version": p.version, "hooks": p.hooks, "builtin": p.builtin, "status": "ok"}
        for p in reg.plugins.values()
        if all_ or not p.builtin
    ]
    rows += [{"name": n, "version": "?", "hooks": [], "builtin": False, "status": why} for n, why in reg.broken.items()
             if n not in {r["name"] for r in rows}]
    for r in rows:
        if r["name"] in reg.broken and r["status"] == "ok":
            r["status"] = reg.broken[r["name"]]
    if format == TableFormat.json:
        print_json(rows)
        return
    if not rows:
        stdout.print("no third-party plugins installed (see --all for the built-ins)")
        return
    from rich.table import Table

    table = Table()
    for col in ("name", "version", "hooks", "status"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(r["name"], r["version"], ", ".join(r["hooks"]), r["status"])
    stdout.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(plugins_app, name="plugins")
