"""``deconstruct dashboard NAME``: optuna-dashboard on the study's storage (optional extra)."""

from __future__ import annotations

import sys

import typer

from deconstruct.cli._common import stderr

STORAGE_HELP = "SQLAlchemy URL of the study database (default: $DECONSTRUCT_STORAGE, else sqlite:///deconstruct.db)."


def dashboard(
    name: str = typer.Argument(..., help="Name of a study in the storage."),
    storage: str = typer.Option(None, "--storage", help=STORAGE_HELP, metavar="URL"),
    port: int = typer.Option(8080, "--port", min=0, max=65535, help="Port to listen on."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (127.0.0.1: this machine only)."),
) -> None:
    """Serve optuna-dashboard on the study's storage and print its URL; Ctrl-C stops it.

    Its plots show every trial: the searched parameters, the objective values, the validation-loss curves
    (Optuna's intermediate values, single-objective studies) and, as user attributes, each trial's metrics
    averaged over its seeds (bits per byte, skip loss, parameters, FLOPs, throughput, …).

    \b
    Examples:
      deconstruct dashboard quickstart
      deconstruct dashboard principles --storage postgresql+psycopg://u@db/s --port 8081
    """
    try:
        import optuna_dashboard
    except ImportError:
        stderr.print("error: the dashboard needs optuna-dashboard: pip install 'deconstruct[dashboard]'",
                     highlight=False, markup=False)
        raise typer.Exit(1) from None
    from deconstruct._errors import DeconstructError
    from deconstruct.store import Store, display_url
    store = Store(storage, create=False)
    store.study(name)  # StudyNotFound (one line, the known names) for a wrong name
    import optuna

    ostorage = optuna.storages.RDBStorage(store.url)
    try:
        study_id = ostorage.get_study_id_from_name(name)
    except KeyError:
        raise DeconstructError(f"study {name!r} has no Optuna study in {display_url(store.url)}") from None
    shown = "localhost" if host in ("127.0.0.1", "::1") else host
    typer.echo(f"http://{shown}:{port}/dashboard/studies/{study_id}")  # data: the URL, on stdout
    sys.stdout.flush()  # before the server blocks: a pipe reader gets the URL now
    stderr.print(f"serving optuna-dashboard for study {name} on {host}:{port}; Ctrl-C stops it",
                 highlight=False, markup=False, soft_wrap=True)
    optuna_dashboard.run_server(ostorage, host=host, port=port)


def register(app: typer.Typer) -> None:
    app.command("dashboard")(dashboard)
