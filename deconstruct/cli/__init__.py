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
from deconstruct.cli._common import tidy_metavars

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


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler ending a job, ``kill``), handled like Ctrl-C: the running trial is recorded as
    interrupted; the exit code is 143 (128 + SIGTERM) instead of 130."""


def interrupt_code(exc: BaseException) -> int:
    return 143 if isinstance(exc, Terminated) else 130


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Terminated()


def handle_sigterm() -> Any:
    """Turn SIGTERM into :class:`Terminated` in the main thread (POSIX; a no-op where it cannot be set).
    Returns the previous handler, for :func:`restore_sigterm` (the CLI can run inside another program)."""
    import signal

    try:
        return signal.signal(signal.SIGTERM, _on_sigterm)
    except (ValueError, OSError, AttributeError):  # not the main thread, or no SIGTERM on this platform
        return None


def restore_sigterm(previous: Any) -> None:
    import signal

    if previous is not None:
        try:
            signal.signal(signal.SIGTERM, previous)
        except (ValueError, OSError, AttributeError):
            pass


def fail(message: str, code: int = 2) -> None:
    """Print one error line on stderr and exit with ``code``."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


class ErrorHandlingGroup(TyperGroup):
    """Turns DeconstructError (and Ctrl-C) into one clear line and an exit code, for every sub-command."""

    def make_context(self, info_name: str | None, args: list[str], parent: ClickContext | None = None, **extra: Any) -> ClickContext:
        tidy_metavars(self)
        return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: ClickContext) -> Any:
        previous = handle_sigterm()
        try:
            return self._invoke(ctx)
        finally:
            restore_sigterm(previous)

    def _invoke(self, ctx: ClickContext) -> Any:
        try:
            return super().invoke(ctx)
        except DeconstructError as exc:
            if debug():
                raise
            fail(str(exc), exc.exit_code)
        except KeyboardInterrupt as exc:
            if debug():
                raise
            typer.echo("terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted", err=True)
            raise typer.Exit(interrupt_code(exc)) from None
        except (MemoryError, OSError, RuntimeError) as exc:  # the environment, not the input: exit 1
            line = environment_fault(exc)
            if line is None or debug():
                raise
            fail(line, 1)
        except Exception as exc:
            if debug() or not type(exc).__module__.startswith("sqlalchemy"):
                raise
            # a database error outside deconstruct's engines (Optuna's)
            from deconstruct.store import storage_error

            fail(str(storage_error(os.environ.get("DECONSTRUCT_STORAGE", "the study database"), exc)), 1)


def environment_fault(exc: BaseException) -> str | None:
    """One line for a fault of the machine rather than of the input (memory, files), or None (a bug: let the
    traceback show)."""
    text = " ".join(str(exc).split())
    if isinstance(exc, MemoryError) or "out of memory" in text.lower() or "can't allocate memory" in text:
        import re

        asked = re.search(r"tried to allocate (\d+ bytes|[\d.]+ ?[KMGT]i?B)", text, re.IGNORECASE)
        size: str | None = asked.group(1) if asked else None
        if size and size.endswith("bytes"):
            size = f"{int(size.split()[0]) / 2**30:,.1f} GiB"
        what = f"a tensor of {size} does not fit" if size else type(exc).__name__
        return f"out of memory: {what} (make the model, batch or sequence smaller)"
    if isinstance(exc, OSError) and exc.strerror:
        where = f" {exc.filename}" if exc.filename else ""
        return f"cannot access{where}: {exc.strerror}"
    return None


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

