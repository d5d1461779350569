"""``deconstruct spec check``: validate a spec and show what it resolves to."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import typer

from deconstruct.cli._common import SetOption, TableFormat, human, print_json, stdout

spec_app = typer.Typer(help="Validate and inspect spec files.", no_args_is_help=True)


def describe_spec(path: Path, overrides: list[str]) -> dict:
    """The resolved spec as data: layers, parameter count and analytic FLOPs/token."""
    import torch

    from deconstruct.model import build_model
    from deconstruct.spec import load_spec
    from deconstruct.tasks import TaskOptions

    resolved = load_spec(path, overrides)
    with torch.device("meta"):  # no memory, no initialisation cost: we only count
        model = build_model(resolved)
    seq_len = int(cast(TaskOptions, resolved.task_options).seq_len)
    return {
        "name": resolved.name,
        "task": {"name": resolved.spec.task.name, **resolved.task_options.model_dump(mode="json")},
        "layers": [
            {"index": p.index, "mixer": p.mixer, "base": p.base, "options": p.options_dict(),
             "changed": p.options.model_dump(mode="json", exclude_defaults=True),
             "standard": p.standard, "channel_mixer": p.channel_mixer}
            for p in resolved.layers
        ],
        "params": model.num_params(),
        "flops_per_token": model.flops_per_token(seq_len),
        "relaxed_layers": resolved.relaxed_layers,
        "config_hash": resolved.config_hash(),
        "search": {k: (v if isinstance(v, list) else v.model_dump()) for k, v in resolved.spec.search.items()},
    }


@spec_app.command("check")
def check(
    spec: Path = typer.Argument(..., help="Spec YAML file."),
    set_: list[str] = SetOption,
    format: TableFormat = typer.Option(TableFormat.table, "--format", "-f", help="table or json"),
) -> None:
    """Validate SPEC; print the per-layer table, parameters and FLOPs/token.

    \b
    Examples:
      deconstruct spec check studies/quickstart.yaml
      deconstruct spec check studies/quickstart.yaml --set model.layout=hybrid --format json
    """
    info = describe_spec(spec, set_)
    if format == TableFormat.json:
        print_json(info)
        return
    from rich.table import Table

    table = Table(title=f"{info['name']} — {len(info['layers'])} layers", title_justify="left")
    for col in ("layer", "mixer", "resolves to", "options", "standard", "channel"):
        table.add_column(col)
    for layer in info["layers"]:
        opts = ", ".join(f"{k}={v}" for k, v in layer["changed"].items()) or "defaults"
        base = layer["base"] if layer["base"] != layer["mixer"] else ""
        table.add_row(str(layer["index"]), layer["mixer"], base, opts, "yes" if layer["standard"] else "relaxed", layer["channel_mixer"])
    stdout.print(table)
    stdout.print(f"parameters: {info['params']:,} ({human(info['params'])})")
    stdout.print(f"forward FLOPs/token: {info['flops_per_token']:,} ({human(info['flops_per_token'])})")
    if info["search"]:
        stdout.print("search: " + "; ".join(f"{k} ∈ {v}" for k, v in info["search"].items()))


def register(app: typer.Typer) -> None:
    app.add_typer(spec_app, name="spec")
