"""One study from the store to a :class:`StudyReport`: configurations, effects, importances, the Pareto
front and the notes that say how to read them. Nothing here formats numbers or writes anything.

The pieces live in their own modules: :mod:`._load` (the store → :class:`StudyData`), :mod:`._configs`
(configurations and diagnostics), :mod:`._effects` (the effect of an axis), :mod:`._importances` (Optuna's
importances); :mod:`._tables` turns the result into the tables every output format shows.
"""

from __future__ import annotations

from typing import Any

from deconstruct._errors import DeconstructError
from deconstruct.report._configs import axes_of, configurations, count_status
from deconstruct.report._effects import axis_effects, default_baseline, resolve_axis
from deconstruct.report._importances import importances
from deconstruct.report._load import StudyData, load_studies
from deconstruct.report._model import (
    AxisEffects,
    Configuration,
    Interaction,
    Report,
    StudyReport,
    fmt_params,
    fmt_value,
)


def pareto_front(configs: list[Configuration], objectives: list[str], directions: list[str]) -> list[Configuration]:
    """Non-dominated configurations on the mean of every objective (seeds averaged, as Optuna is told), marked
    ``pareto`` and sorted by the first objective (the study's one Pareto rule: :func:`deconstruct.study.pareto_front`)."""
    from deconstruct.study import pareto_front as non_dominated

    front = non_dominated(configs, directions, lambda c: [c.other.get(o) for o in objectives])
    for c in front:
        c.pareto = True
    return sorted(front, key=lambda c: (c.other.get(objectives[0]) or 0.0, c.label))


def interaction_effects(study: StudyData, axes: dict[str, list[Any]], categorical: list[str],
                        effects: list[AxisEffects]) -> list[Interaction]:
    """With two or more searched axes: each compared axis's effect at each value of every other categorical
    axis (same baseline, pairs restricted to that value), so an interaction is not averaged away."""
    out = []
    for ae in effects:
        for other in categorical:
            if other == ae.axis or len(axes[other]) < 2:
                continue
            rows = [(w, axis_effects(study, ae.axis, ae.values, ae.baseline, ae.baseline_reason, where={other: w}))
                    for w in axes[other]]
            out.append(Interaction(ae.axis, other, rows))
    return out


def matched_statement(study: StudyData) -> str:
    """What the study held equal across configurations (its ``study.match`` and training budget), in words."""
    spec = study.spec or {}
    match = (spec.get("study") or {}).get("match") or {}
    how = match.get("params", "none")
    train = spec.get("train") or {}
    budget = ("training FLOPs" if train.get("flops") is not None else "tokens" if train.get("tokens") is not None
              else "steps")
    params = (f"parameters matched through model.{how} (±{float(match.get('tolerance', 0.02)):.0%})"
              if how != "none" else "parameters not matched (study.match)")
    return f"{params}; training budget: equal {budget}"


def analyse(study: StudyData, engine: Any = None, by: str | None = None, baseline: str | None = None,
            strict: bool = True) -> StudyReport:
    """Everything a report shows about one study. ``strict=False``: an unknown ``by`` axis becomes a note."""
    axes, categorical = axes_of(study)
    axis_names = list(axes)
    configs = configurations(study, axes)
    notes: list[str] = []
    effects = []
    chosen: list[str] = []
    if by is not None:
        try:
            chosen = [resolve_axis(by, axis_names, study.name)]
        except DeconstructError as exc:
            if strict:
                raise
            notes.append(str(exc))
        if chosen and chosen[0] not in categorical:
            notes.append(f"{chosen[0]} is a continuous axis: its values are compared one by one")
    else:
        chosen = [a for a in categorical if len(axes[a]) > 1]
    for axis in chosen:
        if len(axes[axis]) < 2:
            notes.append(f"{axis} took a single value ({fmt_value(axes[axis][0]) if axes[axis] else 'none'}): no effect to estimate")
            continue
        base, reason = default_baseline(study, axis, axes[axis], baseline)
        ae = axis_effects(study, axis, axes[axis], base, reason)
        effects.append(ae)
        for e in ae.effects:
            if not e.paired and e.interval.estimate is not None and len(axis_names) > 1:
                notes.append(f"{axis}={fmt_value(e.value)} vs {fmt_value(base)}: no two runs differ in {axis} alone "
                             "(same other searched values and seed), so this unpaired difference also carries "
                             "the effects of the other axes")
    interactions = interaction_effects(study, axes, categorical, effects)
    for ae in effects:
        for e in ae.effects:
            if e.n_identical:
                notes.append(f"{ae.axis}={fmt_value(e.value)} vs {fmt_value(ae.baseline)}: {e.n_identical} seed "
                             f"pair(s) left out, both sides being the same model (not evidence)")
    for c in configs:
        if len(c.points) > 1:
            notes.append(f"{c.label}: these search points resolve to one identical configuration ({c.config_hash[:8]}); "
                         "its seeds are counted once")
    for t in study.trials:
        if t.state == "failed" and not t.config_hash:
            notes.append(f"trial {t.number} failed before training ({fmt_params(t.search_params)}): {t.error or 'no reason recorded'}")
    pareto = pareto_front(configs, study.objectives, study.directions) if len(study.objectives) > 1 else None
    if pareto is not None and len(study.objectives) > 2:
        notes.append(f"the Pareto plot shows the first two of {len(study.objectives)} objectives")
    metric = study.metric if study.metric not in (None, study.objectives[0]) else None
    if metric is not None:
        notes.append(f"tables report {metric} ({study.metric_direction}, --metric); parameter importances"
                     f"{' and the Pareto front' if pareto is not None else ''} stay on the study's objectives "
                     f"({', '.join(study.objectives)})")
    if not study.runs:
        notes.append("this study has no runs yet")
    return StudyReport(
        name=study.name,
        storage=study.display_storage,
        objectives=study.objectives,
        directions=study.directions,
        axes=axes,
        categorical=categorical,
        configurations=configs,
        effects=effects,
        importances=importances(study, engine) if engine is not None else None,
        pareto=pareto,
        status=count_status([r.status for r in study.runs]),
        trial_status=count_status([t.state for t in study.trials]) if study.trials else {},
        curve_metric=study.curve_metric,
        notes=notes,
        interactions=interactions,
        matched=matched_statement(study),
        deconstruct_version=study.deconstruct_version,
        torch_version=study.torch_version,
        metric=metric,
        metric_direction=study.metric_direction if metric is not None else None,
    )


def build_report(names: list[str], storage: str | None = None, by: str | None = None,
                 baseline: str | None = None, metric: str | None = None) -> Report:
    """Read studies ``names`` from ``storage`` (default: :func:`deconstruct.store.default_url`) and analyse
    them (nothing is trained or written). ``metric``: report this per-run value (any metric of
    :mod:`deconstruct.metrics`, or a key of the runs' ``metrics``) instead of the first objective;
    importances and the Pareto front stay on the study's objectives."""
    from deconstruct.store import default_url

    if baseline is not None and by is None:
        raise DeconstructError("--baseline needs --by AXIS (the axis whose value it names)")
    data, engine = load_studies(list(names), storage or default_url(), metric)  # unknown names/metric fail first
    try:
        if by is not None and len(data) > 1:  # side by side: an axis only some studies searched is a note
            if not any(any(a == by or a.endswith("." + by) for a in axes_of(d)[0]) for d in data):
                resolve_axis(by, list(axes_of(data[0])[0]), data[0].name)
        studies = [analyse(d, engine, by, baseline, strict=len(data) == 1) for d in data]
    finally:
        engine.dispose()
    return Report(studies, by, baseline)
