"""The effect of one searched axis: each value against a baseline, paired over everything else when possible.

For each value ≠ baseline, the search points with that value are matched with the baseline's point that
agrees on every other searched value; each matched pair contributes one difference per shared seed, and the
effect is the mean of those differences with a paired percentile bootstrap interval. When no point has such
a partner (a sampler that never varied this axis alone), every run of the value is compared with every run of
the baseline (unpaired bootstrap), and the report says that the difference also carries other axes' effects.
"""

from __future__ import annotations

import json
from typing import Any

from deconstruct._errors import DeconstructError
from deconstruct.report._configs import mean, one_per_seed, point_key, search_points
from deconstruct.report._fairness import DEFAULT_TOLERANCE, Cost, cost_of, holm, mismatch, paired_p_value
from deconstruct.report._load import StudyData
from deconstruct.report._model import AxisEffects, Effect, fmt_value
from deconstruct.report._registry import standard_value
from deconstruct.report._stats import Interval, paired_bootstrap_ci, unpaired_bootstrap_ci


def resolve_axis(axis: str, axes: list[str], study: str) -> str:
    """``--by`` accepts the dotted path or any dotted suffix of it (``mixer.kind`` for ``model.mixer.kind``)."""
    if axis in axes:
        return axis
    matches = [a for a in axes if a.endswith("." + axis)]
    if len(matches) == 1:
        return matches[0]
    searched = ", ".join(axes) if axes else "none"
    if len(matches) > 1:
        raise DeconstructError(f"--by {axis} is ambiguous in study {study!r}: {', '.join(matches)}")
    raise DeconstructError(f"study {study!r} did not search {axis!r}; searched axes: {searched}")


def default_baseline(study: StudyData, axis: str, values: list[Any], requested: str | None) -> tuple[Any, str]:
    """The value to compare against, and why: ``--baseline``, else the standard value (see
    :mod:`._registry`), else the spec's own value, else the first value."""
    if requested is not None:
        import yaml

        parsed = yaml.safe_load(requested)
        for v in values:
            if fmt_value(v) == requested or v == parsed:
                return v, "--baseline"
        listed = ", ".join(fmt_value(v) for v in values)
        raise DeconstructError(f"--baseline {requested!r} is not a value of {axis}; values: {listed}")
    configs = {r.config_hash: r.config for r in study.runs}
    points = [(p, configs[h]) for p, h in search_points(study) if h in configs]
    standard = standard_value(axis, values, points)
    if standard is not None:
        return standard, "the standard value"
    node: Any = study.spec
    for key in axis.split("."):
        node = node.get(key) if isinstance(node, dict) else None
    if isinstance(node, dict) and "kind" in node:
        node = node["kind"]
    if node is not None and node in values:
        return node, "the spec's base value"
    return values[0], "the first value"


def axis_effects(study: StudyData, axis: str, values: list[Any], baseline: Any, reason: str,
                 where: dict[str, Any] | None = None) -> AxisEffects:
    """For each value ≠ baseline: the mean of the paired differences over (other searched values, seed) —
    in the order of the search points, then of the seeds — and their bootstrap interval; an unpaired
    comparison of every run of the two values when no pair exists.

    Pairs whose two sides are one and the same model (same configuration hash: e.g. standard attention in a
    "hybrid" layout) are left out and counted (``n_identical``): they are not evidence. Each paired effect
    gets its t-test p-value and the Holm adjustment over the axis's comparisons, and a note when its two
    sides differ in parameters or training FLOPs beyond the study's tolerance. ``where``: only the search
    points with these values of other axes (the conditional effect, for interaction tables)."""
    objective, direction = study.metric_name, study.metric_direction  # --metric, else the first objective
    tolerance = match_tolerance(study)
    by_config: dict[str, list[Any]] = {}
    for r in study.runs:
        by_config.setdefault(r.config_hash, []).append(r)
    used = {h: {r.seed: r for r in one_per_seed(runs, objective)} for h, runs in by_config.items()}
    points: dict[tuple, str] = {}  # search point -> its configuration (the first one seen)
    for point, config_hash in search_points(study):
        if axis in point and all(json.dumps(point.get(k), sort_keys=True) == json.dumps(v, sort_keys=True)
                                 for k, v in (where or {}).items()):
            points.setdefault(point_key(point), config_hash)

    def rest(k: tuple) -> tuple:
        return tuple(item for item in k if item[0] != axis)

    def runs_of(k: tuple) -> dict[int, Any]:
        return used.get(points[k], {})

    base_key = json.dumps(baseline, sort_keys=True)
    base_points = {rest(k): k for k in points if dict(k)[axis] == base_key}
    effects = []
    for value in values:
        if value == baseline:
            continue
        vkey = json.dumps(value, sort_keys=True)
        value_points = [k for k in points if dict(k)[axis] == vkey]
        diffs, base_vals, n_configs, identical = [], [], 0, 0
        sides: tuple[list[Any], list[Any]] = ([], [])  # the runs on each side, for their costs
        for k in value_points:
            b = base_points.get(rest(k))
            if b is None:
                continue
            seeds = sorted(set(runs_of(k)) & set(runs_of(b)))
            if points[k] == points[b]:  # the same model under two names: no evidence either way
                identical += len(seeds)
                continue
            n_configs += bool(seeds)
            for s in seeds:
                v, w = runs_of(k)[s].value(objective), runs_of(b)[s].value(objective)
                diffs.append(v - w)
                base_vals.append(w)
                sides[0].append(runs_of(k)[s])
                sides[1].append(runs_of(b)[s])
        if diffs:
            iv = paired_bootstrap_ci(diffs)
            effects.append(Effect(axis, value, baseline, iv, True, len(diffs), n_configs, n_configs,
                                  len(diffs), len(diffs), mean(base_vals), direction, n_identical=identical,
                                  p_value=paired_p_value(diffs),
                                  mismatch=mismatch(_cost(sides[0]), _cost(sides[1]), tolerance)))
            continue
        if identical:  # every pair was the same model: nothing to estimate
            effects.append(Effect(axis, value, baseline, Interval(None, None, None, 0, "every pair is one identical model"),
                                  True, 0, 0, 0, 0, 0, None, direction, n_identical=identical))
            continue
        # no pair: every run of the value against every run of the baseline (configurations counted once)
        v_configs = list(dict.fromkeys(points[k] for k in value_points if used.get(points[k])))
        b_configs = list(dict.fromkeys(points[k] for k in base_points.values() if used.get(points[k])))
        a = [r.value(objective) for h in v_configs for r in used[h].values()]
        b_ = [r.value(objective) for h in b_configs for r in used[h].values()]
        iv = unpaired_bootstrap_ci(a, b_)
        effects.append(Effect(axis, value, baseline, iv, False, 0, len(v_configs), len(b_configs),
                              len(a), len(b_), mean(b_), direction,
                              mismatch=mismatch(_cost([r for h in v_configs for r in used[h].values()]),
                                                _cost([r for h in b_configs for r in used[h].values()]), tolerance)))
    for e, p in zip(effects, holm([e.p_value for e in effects]), strict=True):
        e.p_holm = p
    return AxisEffects(axis, values, baseline, reason, effects)


def match_tolerance(study: StudyData) -> float:
    """The study's ``study.match.tolerance`` (the default when it did not match)."""
    match = (study.spec.get("study") or {}).get("match") or {}
    return float(match.get("tolerance", DEFAULT_TOLERANCE))


def _cost(runs: list[Any]) -> Cost:
    """Mean parameters and training FLOPs of ``runs``."""
    return cost_of(mean([r.params for r in runs]), mean([r.flops_per_token for r in runs]), mean([r.tokens for r in runs]))
