"""``deconstruct train``: one configuration, one seed, no search."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from deconstruct.cli._common import (
    DeviceOption,
    NprocOption,
    SetOption,
    TextFormat,
    data_parallel,
    end_data_parallel,
    print_json,
    stdout,
)


def train_command(
    spec: Path = typer.Argument(..., metavar="SPEC", help="Spec YAML file."),
    set_: list[str] = SetOption,
    seed: int = typer.Option(None, "--seed", help="Seed (default: the first of train.seeds)."),
    skip_relaxed: bool = typer.Option(
        False, "--skip-relaxed", metavar="", help="Also report skip_block_val_loss (the paper's skip: relaxed blocks removed) and skip_mixer_val_loss (only their token mixers removed)."
    ),
    device: str = DeviceOption,
    nproc: int = NprocOption,
    checkpoint_dir: Path = typer.Option(
        None, "--checkpoint-dir", help="Where this run's checkpoints go (with train.checkpoint_every; default: "
        "$DECONSTRUCT_CHECKPOINTS or ./checkpoints, then NAME/CONFIGHASH-seedN). A checkpoint there is resumed.",
    ),
    format: TextFormat = typer.Option(TextFormat.text, "--format", "-f", help="text or json"),
) -> None:
    """Train SPEC once (no search) and print the result; progress goes to stderr.

    \b
    Examples:
      deconstruct train studies/quickstart.yaml
      deconstruct train studies/quickstart.yaml --set model.mixer.kind=mlp --set train.steps=50
      deconstruct train studies/principles.yaml --set model.mixer=mlp --set model.layout=hybrid --skip-relaxed
      deconstruct train studies/quickstart.yaml --set train.checkpoint_every=100   # run again to resume
    """
    from deconstruct.spec import load_spec

    resolved = load_spec(spec, set_)  # a bad spec fails here, once, before any process is started
    seed = resolved.spec.train.seeds[0] if seed is None else seed
    if nproc > 1:
        from deconstruct.train._distributed import check_batch

        check_batch(resolved.spec.train.batch_size, nproc)
    if data_parallel(nproc, device):  # the leader of a torchrun world (followers never get here)
        try:
            _train(resolved, seed, skip_relaxed, device, checkpoint_dir, format)
        except BaseException:
            end_data_parallel(ok=False)
            raise
        end_data_parallel()
        return
    _train(resolved, seed, skip_relaxed, device, checkpoint_dir, format)


def _train(resolved: Any, seed: int, skip_relaxed: bool, device: str | None, checkpoint_dir: Path | None,
           format: TextFormat) -> None:
    from deconstruct.cli._common import stderr
    from deconstruct.cli._progress import ProgressCallback, make_progress
    from deconstruct.train import checkpoint_root, has_checkpoint, run_directory, train

    if resolved.spec.train.checkpoint_every:
        checkpoint_dir = checkpoint_dir or run_directory(checkpoint_root(), resolved.name, resolved.config_hash(), seed)
        verb = "resuming from" if has_checkpoint(checkpoint_dir) else "checkpoints in"
        stderr.print(f"{verb} {checkpoint_dir}", highlight=False, markup=False, soft_wrap=True)
    elif checkpoint_dir is not None:
        stderr.print("note: --checkpoint-dir has no effect without train.checkpoint_every", highlight=False, markup=False)
    with make_progress() as progress:
        result = train(
            resolved,
            seed=seed,
            callback=ProgressCallback(progress, f"{resolved.name} seed {seed}"),
            skip_relaxed=skip_relaxed,
            device=device,
            checkpoint_dir=checkpoint_dir if resolved.spec.train.checkpoint_every else None,
        )
    values = result.values()  # every per-run metric, named as in deconstruct.metrics
    if format == TextFormat.json:
        print_json({**values, "device": result.device, "seed": seed, "config_hash": result.config_hash})
        return
    from rich.table import Table

    from deconstruct.metrics import all_metrics, show

    order = {m.name: i for i, m in enumerate(all_metrics())}
    table = Table(show_header=False, title=f"{resolved.name} (seed {seed})", title_justify="left")
    for name in sorted(values, key=lambda n: order.get(n, len(order))):
        table.add_row(name, show(name, values[name]))
    table.add_row("device", result.device)
    stdout.print(table)


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)
