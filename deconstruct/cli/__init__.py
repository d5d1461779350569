"""The ``deconstruct`` command line. One module per command group; only this package prints.

Data goes to stdout, progress and errors to stderr. A :class:`DeconstructError` becomes one line and its
exit code (2 for bad input); set ``DECONSTRUCT_DEBUG=1`` for the traceback.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import TYPE_CHECKING, Any

import typer
from typer.core import TyperGroup

from deconstruct._errors import DeconstructError

if TYPE_CHECKING:  # typer vendors click; its group's invoke takes typer's copy of click.Context
    from typer._click.core import Context as ClickContext

#: command modules; each defines ``register(app)``
COMMAND_MODULES = ("spec", "train", "eval", "data", "variants", "plugins", "bench", "report", "study", "dashboard")

HELP = """Take attention apart: declarative ablation studies of Transformer design principles.

\b
Examples:
  deconstruct spec check studies/quickstart.yaml
  deconstruct train studies/quickstart.yaml --set model.layers=2
  deconstruct variants list
"""


def debug() -> bool:
    return os.environ.get("DECONSTRUCT_DEBUG", "") not in ("", "0")


def fail(message: str, code: int = 2) -> None:
    """Print one error line on stderr and exit with ``code``."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


class ErrorHandlingGroup(TyperGroup):
    """Turns DeconstructError (and Ctrl-C) into one clear line and an exit code, for every sub-command."""

    def invoke(self, ctx: ClickContext) -> Any:
        try:
            return super().invoke(ctx)
        except DeconstructError as exc:
            if debug():
                raise
            fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            if debug():
                raise
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None


def _warn_plugin_problems() -> None:
    from deconstruct.plugins import get_registry

    for line in get_registry().problems():
        typer.echo(f"warning: {line}", err=True)


def build_app() -> typer.Typer:
    app = typer.Typer(
        cls=ErrorHandlingGroup,
        help=HELP,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode="rich",
    )

    def _print_version(value: bool) -> None:
        if value:  # eager: runs before click asks for a command
            from deconstruct import __version__

            typer.echo(__version__)
            raise typer.Exit()

    @app.callback()
    def _root(version: bool = typer.Option(False, "--version", help="Print the version and exit.",
                                           is_eager=True, callback=_print_version)) -> None:
        pass

    for name in COMMAND_MODULES:
        importlib.import_module(f"deconstruct.cli.{name}").register(app)
    # plugin sub-commands (register_commands hook); a broken plugin is disabled, never fatal. Built-ins add
    # no commands, so with no third-party plugin installed the registry is not built here (fast --help).
    try:
        from deconstruct.plugins import _entry_points, add_plugin_commands

        if _entry_points():
            add_plugin_commands(app)
    except DeconstructError as exc:
        typer.echo(f"warning: {exc}", err=True)
    return app


def main(argv: list[str] | None = None) -> None:
    from deconstruct.cli import _common

    _common.ARGV = list(argv) if argv is not None else sys.argv[1:]
    app = build_app()
    if "--help" not in (argv or sys.argv):
        _warn_plugin_problems()
    app(args=argv)

