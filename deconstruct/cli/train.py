"""``deconstruct train``: one configuration, one seed, no search."""

from __future__ import annotations

from pathlib import Path

import typer

from deconstruct.cli._common import DeviceOption, SetOption, TextFormat, human, print_json, stdout


def train_command(
    spec: Path = typer.Argument(..., help="Spec YAML file."),
    set_: list[str] = SetOption,
    seed: int = typer.Option(None, "--seed", help="Seed (default: the first of train.seeds)."),
    skip_relaxed: bool = typer.Option(
        False, "--skip-relaxed", help="Also report skip_block_val_loss (the paper's skip: relaxed blocks removed) and skip_mixer_val_loss (only their token mixers removed)."
    ),
    device: str = DeviceOption,
    format: TextFormat = typer.Option(TextFormat.text, "--format", "-f", help="text or json"),
) -> None:
    """Train SPEC once (no search) and print the result; progress goes to stderr.

    \b
    Examples:
      deconstruct train studies/quickstart.yaml
      deconstruct train studies/quickstart.yaml --set model.mixer.kind=mlp --set train.steps=50
      deconstruct train studies/principles.yaml --set model.layout=hybrid --skip-relaxed --format json
    """
    from deconstruct.cli._progress import ProgressCallback, make_progress
    from deconstruct.spec import load_spec
    from deconstruct.train import train

    resolved = load_spec(spec, set_)
    seed = resolved.spec.train.seeds[0] if seed is None else seed
    with make_progress() as progress:
        result = train(
            resolved,
            seed=seed,
            callback=ProgressCallback(progress, f"{resolved.name} seed {seed}"),
            skip_relaxed=skip_relaxed,
            device=device,
        )
    data = result.to_dict()
    if format == TextFormat.json:
        print_json(data)
        return
    from rich.table import Table

    table = Table(show_header=False, title=f"{resolved.name} (seed {seed})", title_justify="left")
    for key in ("val_loss", "bits_per_byte", "skip_block_val_loss", "skip_mixer_val_loss", "params", "flops_per_token", "tokens",
                "tokens_per_second", "seconds", "device"):
        if key in data:
            v = data[key]
            shown = f"{v:.4f}" if isinstance(v, float) and key in ("val_loss", "bits_per_byte", "skip_block_val_loss", "skip_mixer_val_loss") else (
                human(v) if isinstance(v, (int, float)) else str(v))
            table.add_row(key, shown)
    stdout.print(table)


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)
