"""Helpers shared by command modules: consoles, spec loading, output formats."""

from __future__ import annotations

import json
from enum import Enum
from typing import Any

import typer
from rich.console import Console

# markup off: every string printed is data (a searched value "[/bold]", an error quoting "[x]") shown as is;
# styling goes through rich.text.Text / table styles, never through markup in strings
stdout = Console(soft_wrap=True, markup=False)  # data
stderr = Console(stderr=True, markup=False)  # progress, warnings, errors

SET_HELP = "Override a spec key: --set PATH=VALUE (VALUE parsed as YAML), e.g. --set model.layers=2. Repeatable."
SetOption = typer.Option([], "--set", "-s", help=SET_HELP, metavar="PATH=VALUE")
DeviceOption = typer.Option(None, "--device", help="cpu, cuda, mps (default: train.device).")
NprocOption = typer.Option(
    1, "--nproc", min=1, metavar="N",
    help="Data parallelism: N processes on this machine (one per GPU, or CPU processes with gloo), launched "
    "through torchrun; same global batch, each process its own shard.",
)
ARGV: list[str] = []  #: the command line as given (set by deconstruct.cli.main), for re-launching under torchrun


class TableFormat(str, Enum):
    table = "table"
    json = "json"


class TextFormat(str, Enum):
    text = "text"
    json = "json"


def print_json(data: Any) -> None:
    """One JSON document on stdout (plain print: no rich markup, no wrapping)."""
    typer.echo(json.dumps(data, indent=2, default=str))


def data_parallel(nproc: int, device: str | None) -> bool:
    """``--nproc N``. In a plain process with N > 1: re-run this very command under torchrun (N processes) and
    exit with its code. In a process torchrun started: join the world; a follower trains what the leader
    announces, then exits 0; the leader gets True (and calls :func:`end_data_parallel` when done).
    False: a single process, nothing to do."""
    import sys

    from deconstruct.train._distributed import follow, launch, launched, setup, teardown

    if launched():
        ctx = setup(device)
        if ctx.leader:
            return True
        follow(ctx)
        teardown()
        raise typer.Exit(0)
    if nproc <= 1:
        return False
    raise typer.Exit(launch(ARGV or sys.argv[1:], nproc))


def end_data_parallel(ok: bool = True) -> None:
    from deconstruct.train._distributed import teardown

    teardown(announce_end=ok)


#: what typer calls a value's type in ``--help`` → the name shown (one convention for every command)
_METAVARS = {"int": "INT", "int range": "INT", "float": "NUMBER", "float range": "NUMBER", "str": "TEXT",
             "path": "PATH", "bool": "BOOL"}


def tidy_metavars(command: Any) -> None:
    """One metavar convention across the CLI's help: flags (``--help``, ``--all``) show none, values show an
    upper-case name (``INT``, ``NUMBER``, ``TEXT``, ``PATH``; ranges keep their ``[x>=1]``), choices their
    values ``a|b``; an explicit metavar (``URL``, ``PATH=VALUE``) is kept. Typer vendors click, so the
    parameters are duck-typed."""
    ctx = command.context_class(command)
    params = list(command.params)
    help_option = command.get_help_option(ctx)
    if help_option is not None:
        params.append(help_option)
    for param in params:
        if not hasattr(param, "is_flag") or param.metavar is not None:  # arguments keep their names
            continue
        if param.is_flag or param.count:
            param.metavar = ""
            continue
        shown = str(param.display_type(ctx) or "").strip("<>")
        if shown.startswith("list[") and shown.endswith("]"):  # a repeatable option: the type of one value
            shown = shown[len("list["):-1]
        param.metavar = _METAVARS.get(shown, shown if "|" in shown else shown.upper()) or None
    for sub in getattr(command, "commands", {}).values():
        tidy_metavars(sub)
