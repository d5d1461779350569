"""Helpers shared by command modules: consoles, spec loading, output formats."""

from __future__ import annotations

import json
from enum import Enum
from typing import Any

import typer
from rich.console import Console

stdout = Console(soft_wrap=True)  # data
stderr = Console(stderr=True)  # progress, warnings, errors

SET_HELP = "Override a spec key: --set PATH=VALUE (VALUE parsed as YAML), e.g. --set model.layers=2. Repeatable."
SetOption = typer.Option([], "--set", "-s", help=SET_HELP, metavar="PATH=VALUE")
DeviceOption = typer.Option(None, "--device", help="cpu, cuda, mps (default: train.device).")


class TableFormat(str, Enum):
    table = "table"
    json = "json"


class TextFormat(str, Enum):
    text = "text"
    json = "json"


def print_json(data: Any) -> None:
    """One JSON document on stdout (plain print: no rich markup, no wrapping)."""
    typer.echo(json.dumps(data, indent=2, default=str))
