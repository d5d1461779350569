"""From stored runs to configurations: search points and axes, per-configuration statistics over seeds, and
attention diagnostics.

The study runner trains a configuration once per seed and lets later trials of the same configuration reuse
those runs, so a search point is mapped to its configuration (through ``dc_trial``, or the runs' own
``search_params``) and takes that configuration's runs. Seeds are replicates: statistics use one completed
run per (configuration, seed) — the earliest — and the status columns count every run.

Attention diagnostics (``dc_diagnostic``, Xue et al. 2025's indicators, see ``deconstruct.train._diagnostics``)
are averaged over the same runs: per layer, the mean over seeds and heads of each per-head indicator, and the
mean over seeds of the per-layer ``head_diversity``.
"""

from __future__ import annotations

import json
import math
from typing import Any

from deconstruct.report._load import StudyData
from deconstruct.report._model import (
    STATUSES,
    Configuration,
    Diagnostics,
    LayerDiagnostics,
    fmt_value,
    short_axis,
)
from deconstruct.report._registry import token_wise
from deconstruct.report._stats import mean_ci

#: an axis not declared as a list in the spec counts as categorical up to this many distinct values
MAX_CATEGORICAL_VALUES = 12
NO_MAP = "no attention map (token-wise mixer)"
NO_RUN = "no completed run"
NOT_RECORDED = "no diagnostics recorded for its runs"


def point_key(point: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """A hashable identity of a search point (for matching search points within and across studies)."""
    return tuple(sorted((k, json.dumps(v, sort_keys=True)) for k, v in point.items()))


def finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def mean(xs: list[float | None]) -> float | None:
    ys = [x for x in xs if finite(x)]
    return math.fsum(ys) / len(ys) if ys else None  # type: ignore[arg-type]


def one_per_seed(runs: list[Any], objective: str) -> list[Any]:
    """The completed run with a finite objective of each seed (earliest trial first), sorted by seed."""
    best: dict[int, Any] = {}
    for r in sorted(runs, key=lambda r: (r.trial_number, r.id)):
        if r.status == "completed" and finite(r.value(objective)) and r.seed not in best:
            best[r.seed] = r
    return [best[s] for s in sorted(best)]


def count_status(states: list[str]) -> dict[str, int]:
    counts = dict.fromkeys(STATUSES, 0)
    for state in states:
        counts[state] = counts.get(state, 0) + 1
    return counts


def _sort_values(values: list[Any], declared: list[Any] | None) -> list[Any]:
    order = {json.dumps(v, sort_keys=True): i for i, v in enumerate(declared or [])}
    seen: list[Any] = []
    for v in values:
        if v not in seen:
            seen.append(v)
    return sorted(seen, key=lambda v: (order.get(json.dumps(v, sort_keys=True), len(order)), seen.index(v)))


# ---------------------------------------------------------------------------------------- search points


def search_points(study: StudyData) -> list[tuple[dict[str, Any], str]]:
    """Every distinct (search point, configuration hash): from the trial rows, then from the runs."""
    seen: dict[tuple, tuple[dict[str, Any], str]] = {}
    for t in study.trials:
        if t.config_hash and t.search_params:
            seen.setdefault((point_key(t.search_params), t.config_hash), (t.search_params, t.config_hash))
    for r in study.runs:
        seen.setdefault((point_key(r.search_params), r.config_hash), (r.search_params, r.config_hash))
    return list(seen.values())


def axes_of(study: StudyData) -> tuple[dict[str, list[Any]], list[str]]:
    """Searched paths with their values in search order, and which of them are categorical."""
    declared = study.spec.get("search") or {}
    points = [p for p, _ in search_points(study)] + [t.search_params for t in study.trials]
    names = list(declared)
    for p in points:
        names += [k for k in p if k not in names]
    axes, categorical = {}, []
    for name in names:
        spec_values = declared.get(name)
        seen = [p[name] for p in points if name in p]
        listed = spec_values if isinstance(spec_values, list) else None
        axes[name] = _sort_values(seen, listed)
        if listed is not None or (spec_values is None and len(axes[name]) <= MAX_CATEGORICAL_VALUES):
            categorical.append(name)
    return axes, categorical


def label_for(points: list[dict[str, Any]], axes: dict[str, list[Any]], config_hash: str) -> str:
    """``mixer.kind=mlp, layout=hybrid``; points merged into one configuration show ``layout=uniform|hybrid``."""
    names = list(axes)
    parts = []
    for axis in names:
        vals = _sort_values([p[axis] for p in points if axis in p], axes.get(axis))
        if vals:
            parts.append(f"{short_axis(axis, names)}={'|'.join(fmt_value(v) for v in vals)}")
    return ", ".join(parts) if parts else f"config {config_hash[:8]}"


# ---------------------------------------------------------------------------------------- diagnostics


def _layer_mixers(config: dict[str, Any]) -> dict[int, tuple[str | None, str | None]]:
    """Layer index -> (mixer, base mixer) from a resolved configuration's ``layers``."""
    out: dict[int, tuple[str | None, str | None]] = {}
    for layer in (config or {}).get("layers") or []:
        if isinstance(layer, dict) and isinstance(layer.get("index"), int):
            out[layer["index"]] = (layer.get("mixer"), layer.get("base") or layer.get("mixer"))
    return out


def diagnostics_of(config: dict[str, Any], used: list[Any],
                   rows: dict[int, list[tuple[int, int, str, float]]]) -> Diagnostics:
    """Average the indicators of ``used`` (one completed run per seed) per layer: each per-head indicator over
    every (seed, head) value and per head over seeds; per-layer ones (head −1) over seeds."""
    acc: dict[int, dict[str, dict[int, list[float]]]] = {}  # layer -> name -> head -> values over seeds
    runs_of: dict[int, set[int]] = {}
    contributed: set[int] = set()
    for r in used:
        for layer, head, name, value in rows.get(r.id, []):
            if not finite(value):
                continue
            acc.setdefault(layer, {}).setdefault(name, {}).setdefault(head, []).append(value)
            runs_of.setdefault(layer, set()).add(r.id)
            contributed.add(r.id)
    mixers = _layer_mixers(config)
    layers = []
    for layer in sorted(acc):
        means: dict[str, float] = {}
        per_head: dict[str, list[float | None]] = {}
        heads = 0
        for name, by_head in acc[layer].items():
            head_ids = sorted(h for h in by_head if h >= 0)
            if head_ids:
                flat = [v for h in head_ids for v in by_head[h]]
                means[name] = math.fsum(flat) / len(flat)
                per_head[name] = [math.fsum(by_head[h]) / len(by_head[h]) if h in by_head else None
                                  for h in range(head_ids[-1] + 1)]
                heads = max(heads, head_ids[-1] + 1)
            else:
                means[name] = math.fsum(by_head[-1]) / len(by_head[-1])
        means = {**{k: means[k] for k in per_head}, **{k: v for k, v in means.items() if k not in per_head}}
        layers.append(LayerDiagnostics(layer, mixers.get(layer, (None, None))[0], len(runs_of[layer]), heads,
                                       means, per_head))

    def why(base: str | None) -> str:
        return NO_MAP if token_wise(base) else NOT_RECORDED

    missing = [(i, mixer, why(base)) for i, (mixer, base) in sorted(mixers.items()) if i not in acc]
    reason = None
    if not layers:
        if not used:
            reason = NO_RUN
        elif mixers and all(token_wise(base) for _, base in mixers.values()):
            reason = NO_MAP
        else:
            reason = NOT_RECORDED
    return Diagnostics(layers, missing, reason, len(contributed))


# ---------------------------------------------------------------------------------------- configurations


def _curve(runs: list[Any], curves: dict[int, list[tuple[int, float]]]) -> list[tuple[int, float, int]]:
    by_step: dict[int, list[float]] = {}
    for r in runs:
        for step, value in curves.get(r.id, []):
            if math.isfinite(value):
                by_step.setdefault(step, []).append(value)
    return [(s, math.fsum(v) / len(v), len(v)) for s, v in sorted(by_step.items())]


def _first(xs: list[Any]) -> Any:
    return next((x for x in xs if x is not None), None)


def _failures(runs: list[Any]) -> list[tuple[str, int]]:
    """(first line of the error, count) of the failed runs, most frequent first."""
    reasons: dict[str, int] = {}
    for r in runs:
        if r.status == "failed":
            text = (r.error or "").strip()
            reason = text.splitlines()[0] if text else "no reason recorded"
            reasons[reason] = reasons.get(reason, 0) + 1
    return sorted(reasons.items(), key=lambda kv: -kv[1])


def configurations(study: StudyData, axes: dict[str, list[Any]]) -> list[Configuration]:
    """Every configuration with runs, ranked best first on the reported value (``--metric``, else the first
    objective); configurations without a completed run come last, unranked."""
    objective, direction = study.metric_name, study.metric_direction
    groups: dict[str, list[Any]] = {}
    for r in study.runs:
        groups.setdefault(r.config_hash, []).append(r)
    points: dict[str, list[dict[str, Any]]] = {}
    for point, config_hash in search_points(study):
        if point not in points.setdefault(config_hash, []):
            points[config_hash].append(point)
    out = []
    for config_hash, runs in groups.items():
        used = one_per_seed(runs, objective)
        config_points = points.get(config_hash, [])
        out.append(Configuration(
            config_hash=config_hash,
            label=label_for(config_points, axes, config_hash),
            points=config_points,
            config=runs[0].config,
            runs=runs,
            used=used,
            objective=mean_ci([r.value(objective) for r in used]),
            # every objective's mean (the Pareto front stays on them whatever --metric reports)
            other={name: mean([r.value(name) for r in used]) for name in study.objectives},
            params=_first([r.params for r in used] + [r.params for r in runs]),
            flops_per_token=_first([r.flops_per_token for r in used] + [r.flops_per_token for r in runs]),
            tokens=mean([r.tokens for r in used]),
            tokens_per_second=mean([r.tokens_per_second for r in used]),
            wall_seconds=mean([r.wall_seconds for r in used]),
            wall_seconds_total=math.fsum(r.wall_seconds or 0.0 for r in runs),
            status=count_status([r.status for r in runs]),
            failures=_failures(runs),
            curve=_curve(used or [r for r in runs if r.id in study.curves], study.curves),
            diagnostics=diagnostics_of(runs[0].config, used, study.diagnostics),
        ))
    sign = 1 if direction == "minimize" else -1
    out.sort(key=lambda c: (c.objective.estimate is None, sign * (c.objective.estimate or 0.0), c.label))
    for i, c in enumerate(out):
        c.rank = i + 1 if c.objective.estimate is not None else None
    return out
