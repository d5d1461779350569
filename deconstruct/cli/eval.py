"""``deconstruct eval RUN``: re-compute a run's evaluation and attention diagnostics from its checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from deconstruct.cli._common import DeviceOption, TextFormat, print_json, stdout

STORAGE_HELP = "SQLAlchemy URL of the study database (default: $DECONSTRUCT_STORAGE, else sqlite:///deconstruct.db)."


def _checkpoint_of(run: str, storage: str | None) -> tuple[Path, dict[str, Any]]:
    """The checkpoint directory of RUN (a run id in the store, or a directory) and what the store says of it."""
    from deconstruct.store import Store
    from deconstruct.train import CheckpointError

    if not run.isdigit():
        if Path(run).is_dir():
            return Path(run), {}
        raise CheckpointError(f"RUN {run!r} is neither a run id (a number, see `deconstruct study show NAME "
                              "--format json`) nor a checkpoint directory")
    store = Store(storage, create=False)
    try:
        info = store.get_run(int(run))
    except Exception:
        raise CheckpointError(f"no run {run} in {store.url}; run ids are listed by `deconstruct study show NAME "
                              "--format json`") from None
    if not info.checkpoint_dir:
        raise CheckpointError(f"run {run} kept no checkpoint (its spec did not set train.checkpoint_every)")
    stored = {"val_loss": info.val_loss, **{k: v for k, v in (info.metrics or {}).items() if isinstance(v, float)}}
    return Path(info.checkpoint_dir), stored


def eval_command(
    run: str = typer.Argument(..., help="A run id in the store, or a checkpoint directory."),
    storage: str = typer.Option(None, "--storage", help=STORAGE_HELP, metavar="URL"),
    skip_relaxed: bool = typer.Option(
        False, "--skip-relaxed", help="Also compute skip_block_val_loss and skip_mixer_val_loss (relaxed blocks, or their token mixers, removed)."
    ),
    device: str = DeviceOption,
    format: TextFormat = typer.Option(TextFormat.text, "--format", "-f", help="text or json"),
) -> None:
    """Re-compute RUN's validation metrics and attention diagnostics from its last checkpoint.

    \b
    Examples:
      deconstruct eval 12 --skip-relaxed
      deconstruct eval 12 --storage sqlite:///runs.db --format json
      deconstruct eval checkpoints/quickstart/0123abcd4567ef89-seed0
    """
    from deconstruct.metrics import show
    from deconstruct.train import evaluate_checkpoint

    directory, stored = _checkpoint_of(run, storage)
    out = evaluate_checkpoint(directory, skip_relaxed=skip_relaxed, device=device)
    out["stored"] = stored
    if format == TextFormat.json:
        print_json(out)
        return
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"run {escape(run)} at step {out['step']} (seed {out['seed']}, config {out['config_hash']})",
                  title_justify="left")
    for col in ("metric", "recomputed", "stored"):
        table.add_column(col)
    for name, value in out["metrics"].items():
        table.add_row(escape(name), show(name, value), show(name, stored.get(name)) if stored else "—")
    stdout.print(table)
    per_layer: dict[int, dict[str, list[float]]] = {}
    for layer, _head, name, value in out["diagnostics"]:
        per_layer.setdefault(layer, {}).setdefault(name, []).append(value)
    if per_layer:  # the mean over heads; --format json has every head
        names = list(dict.fromkeys(n for r in per_layer.values() for n in r))
        diag = Table(title="attention diagnostics (mean over heads; --format json for each head)", title_justify="left")
        for col in ("layer", *names):
            diag.add_column(escape(col))
        for layer, values in sorted(per_layer.items()):
            diag.add_row(str(layer), *(f"{sum(values[n]) / len(values[n]):.3f}" if n in values else "—" for n in names))
        stdout.print(diag)


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_command)
