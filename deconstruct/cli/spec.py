"""``deconstruct spec check``: validate a spec and show what it resolves to."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from deconstruct.cli._common import SetOption, TableFormat, print_json, stdout
from deconstruct.metrics import human

spec_app = typer.Typer(help="Validate and inspect spec files.", no_args_is_help=True)


def describe_spec(path: Path, overrides: list[str]) -> dict:
    """The resolved spec as data: layers, parameter count and analytic FLOPs/token."""
    import torch

    from deconstruct.model import build_model, model_cost
    from deconstruct.spec import load_spec
    from deconstruct.study._check import check_search
    from deconstruct.train import pick_device

    checked = check_search(path, overrides)  # every searched value too: what `study run` would refuse
    resolved = load_spec(path, overrides)
    cost = model_cost(resolved)  # built on the meta device: no memory, no initialisation cost
    with torch.device("meta"):
        model = build_model(resolved)
    device = pick_device(resolved.spec.train.device)  # where `train` would run: the backends depend on it
    backends = model.backends(device, strict=False)
    return {
        "name": resolved.name,
        "task": {"name": resolved.spec.task.name, **resolved.task_options.model_dump(mode="json")},
        "layers": [
            {"index": p.index, "mixer": p.mixer, "base": p.base, "options": p.options_dict(),
             "changed": p.options.model_dump(mode="json", exclude_defaults=True),
             "standard": p.standard, "channel_mixer": p.channel_mixer, "backend": backend}
            for p, backend in zip(resolved.layers, backends, strict=True)
        ],
        "device": str(device),
        "params": cost.params,
        "flops_per_token": cost.flops_per_token,
        "relaxed_layers": resolved.relaxed_layers,
        "config_hash": resolved.config_hash(),
        "search": {k: (v if isinstance(v, list) else v.model_dump()) for k, v in resolved.spec.search.items()},
        "match": resolved.spec.study.match.model_dump(mode="json"),
        "configurations": configurations(resolved, path, overrides),
        "search_configurations": checked.points,
    }


def configurations(resolved: Any, path: Path, overrides: list[str]) -> list[dict[str, Any]]:
    """Each configuration of a finite search space with what it costs (parameters, FLOPs/token, steps of the
    training budget) and, under ``study.match``, the matched value; [] without a finite search."""
    from deconstruct.model import model_cost
    from deconstruct.plugins import get_registry
    from deconstruct.spec import load_spec
    from deconstruct.study import Matcher, SearchSpace, match_space, normalize, read_spec
    from deconstruct.train import total_steps

    spec = resolved.spec
    if not spec.search or spec.study.sampler not in ("grid", "bruteforce"):
        return []
    registry = get_registry()
    base = normalize(read_spec(str(path), overrides)[0])
    space = SearchSpace(spec, registry)
    match = spec.study.match
    matcher = Matcher(match.params, match.tolerance, base, lambda d: load_spec(d, registry=registry))
    rows = []
    for params, m in match_space(space, base, matcher):
        rows.append({"params": params, "param_count": m.params, "matched": m.value,
                     "flops_per_token": model_cost(m.resolved).flops_per_token, "steps": total_steps(m.resolved)})
    return rows


@spec_app.command("check")
def check(
    spec: Path = typer.Argument(..., metavar="SPEC", help="Spec YAML file."),
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
    for col in ("layer", "mixer", "resolves to", "options", "standard", "channel", "backend"):
        table.add_column(col)
    for layer in info["layers"]:
        opts = ", ".join(f"{k}={v}" for k, v in layer["changed"].items()) or "defaults"
        base = layer["base"] if layer["base"] != layer["mixer"] else ""
        table.add_row(str(layer["index"]), layer["mixer"], base, opts, "yes" if layer["standard"] else "relaxed", layer["channel_mixer"],
                      layer["backend"])
    stdout.print(table)
    stdout.print(f"backend: what computes each layer's mixing on {info['device']} (train.device)")
    stdout.print(f"parameters: {info['params']:,} ({human(info['params'])})")
    stdout.print(f"forward FLOPs/token: {info['flops_per_token']:,} ({human(info['flops_per_token'])})")
    if info["search"]:
        stdout.print("search: " + "; ".join(f"{k} ∈ {v}" for k, v in info["search"].items()), markup=False)
    if info["search_configurations"] is not None:
        stdout.print(f"search configurations: {info['search_configurations']}, each resolves to a valid spec")
    if info["configurations"]:
        how = info["match"]["params"]
        title = "configurations" + (f" — parameters matched through model.{how} (±{info['match']['tolerance']:.0%})" if how != "none" else "")
        configs = Table(title=title, title_justify="left")
        for col in ("configuration", "parameters", "FLOPs/token", "steps", *([how] if how != "none" else [])):
            configs.add_column(col, overflow="fold")
        for c in info["configurations"]:
            what = ", ".join(f"{k}={v}" for k, v in c["params"].items()) or "(baseline)"  # plain text: no markup
            row = [what, f"{c['param_count']:,}", human(c["flops_per_token"]), str(c["steps"])]
            configs.add_row(*row, *([str(c["matched"])] if how != "none" else []))
        stdout.print(configs)


def register(app: typer.Typer) -> None:
    app.add_typer(spec_app, name="spec")
