"""From stored runs to the answers a report gives: per-configuration statistics, axis effects,
parameter importances and the Pareto front.

Vocabulary: a *search point* is one assignment of the searched values (``RunRow.search_params``); a
*configuration* is one resolved model+training setup (``RunRow.config_hash``). Several search points can
resolve to the same configuration (e.g. ``layout=hybrid`` changes nothing when the mixer already is
attention); the configuration table merges them, the effect of an axis compares search points.
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
import warnings
from dataclasses import dataclass, field
from typing import Any

from deconstruct._errors import DeconstructError
from deconstruct.report._load import StudyData, display_url
from deconstruct.report._stats import Interval, mean_ci, paired_bootstrap_ci, unpaired_bootstrap_ci

#: values that mean "standard attention" on an axis: the default baseline of ``--by``, in this order
STANDARD_VALUES = ("attention", "standard", "uniform", "softmax", "separate", "hidden")
#: fewest completed trials for which parameter importances are computed
MIN_IMPORTANCE_TRIALS = 4
#: an axis not declared as a list in the spec counts as categorical up to this many distinct values
MAX_CATEGORICAL_VALUES = 12
STATUSES = ("completed", "pruned", "failed", "running")
#: mixers that mix nothing across positions (MECHANISMS.md: the token-wise MLP), so they have no attention map
TOKEN_WISE = ("mlp",)
NO_MAP = "no attention map (token-wise mixer)"
NO_RUN = "no completed run"
NOT_RECORDED = "no diagnostics recorded for its runs"


# ---------------------------------------------------------------------------------------------- data


@dataclass
class LayerDiagnostics:
    """The attention indicators of one layer of one configuration, over its seeds."""

    layer: int  # 1-based
    mixer: str | None  # the layer's mixer in the resolved configuration
    n: int  # seeds (runs) with indicators for this layer
    heads: int
    mean: dict[str, float]  # indicator -> mean over seeds and heads (head_diversity: over seeds)
    per_head: dict[str, list[float | None]]  # per-head indicator -> mean over seeds of each head


@dataclass
class Diagnostics:
    """A configuration's attention diagnostics: the layers that have them, and why the others have none."""

    layers: list[LayerDiagnostics]
    missing: list[tuple[int, str | None, str]]  # (layer, mixer, reason) of configured layers without any
    reason: str | None  # why the configuration has none at all (None when ``layers``)
    n_runs: int  # runs that contributed

    @property
    def heads(self) -> int:
        return max((d.heads for d in self.layers), default=0)


@dataclass
class Configuration:
    """One resolved configuration of a study: its runs and the statistics over its seeds."""

    config_hash: str
    label: str
    points: list[dict[str, Any]]  # the distinct search points that resolve to this configuration
    config: dict[str, Any]
    runs: list[Any]  # every run (deconstruct.store.RunInfo or _load.Run), any status
    used: list[Any]  # one completed run per seed, with a finite objective: what the statistics use
    objective: Interval  # mean and Student-t interval of the primary objective over ``used``
    other: dict[str, float | None]  # mean of each further objective
    params: int | None
    flops_per_token: int | None
    tokens_per_second: float | None  # mean over ``used``
    wall_seconds: float | None  # mean per run over ``used``
    wall_seconds_total: float  # all runs
    status: dict[str, int]
    failures: list[tuple[str, int]]  # (reason, count) of failed runs
    curve: list[tuple[int, float, int]]  # (step, mean over seeds, number of seeds)
    rank: int | None = None
    pareto: bool = False
    diagnostics: Diagnostics | None = None

    @property
    def seeds(self) -> list[int]:
        return [r.seed for r in self.used]

    def values(self, name: str) -> list[float]:
        return [v for v in (r.value(name) for r in self.used) if v is not None]


#: below this many paired differences (or runs a side, unpaired) the bootstrap interval is not trusted
MIN_CONFIDENT_N = 5


@dataclass
class Effect:
    """Mean difference ``value − baseline`` of the objective along one axis."""

    axis: str
    value: Any
    baseline: Any
    interval: Interval  # estimate = the mean difference; low/high = the bootstrap interval
    paired: bool
    n_pairs: int  # paired: (point, seed) pairs; unpaired: 0
    n_configs: int  # paired: matched point pairs; unpaired: search points with this value
    n_baseline_configs: int
    n_runs: int  # runs with this value in the estimate
    n_baseline_runs: int
    baseline_mean: float | None
    direction: str

    @property
    def relative(self) -> float | None:
        d, b = self.interval.estimate, self.baseline_mean
        return None if d is None or not b else d / abs(b)

    @property
    def method(self) -> str:
        return self.interval.method

    @property
    def verdict(self) -> str:
        iv = self.interval
        if iv.estimate is None:
            return "no data"
        if not iv.has_interval:
            return "no interval"
        if iv.low <= 0 <= iv.high:  # type: ignore[operator]
            return "unclear (CI spans 0)"
        lower_is_better = self.direction == "minimize"
        word = "better" if (iv.high < 0) == lower_is_better else "worse"  # type: ignore[operator]
        n = self.n_pairs if self.paired else min(self.n_runs, self.n_baseline_runs)
        if n < MIN_CONFIDENT_N:  # a bootstrap over 2–4 differences is only their spread, not a 95% interval
            return f"{word}? (only {n} {'pairs' if self.paired else 'runs'}; bootstrap CI unreliable below {MIN_CONFIDENT_N})"
        return word


@dataclass
class AxisEffects:
    axis: str
    values: list[Any]
    baseline: Any
    baseline_reason: str
    effects: list[Effect]


@dataclass
class Importances:
    values: dict[str, float] | None  # parameter -> normalised importance, largest first
    evaluator: str
    n_trials: int
    note: str  # why there are none, or how to read them


@dataclass
class StudyReport:
    name: str
    storage: str  # display form (no password)
    objectives: list[str]
    directions: list[str]
    axes: dict[str, list[Any]]  # searched path -> values in search order
    categorical: list[str]  # axes whose values are compared by --by
    configurations: list[Configuration]
    effects: list[AxisEffects]
    importances: Importances | None
    pareto: list[Configuration] | None  # multi-objective studies only, sorted by the first objective
    status: dict[str, int]  # runs per status
    trial_status: dict[str, int]  # trials per state (empty when the store has no trial rows)
    curve_metric: str
    notes: list[str] = field(default_factory=list)
    deconstruct_version: str = ""
    torch_version: str = ""
    metric: str | None = None  # --metric: what the tables report instead of the first objective
    metric_direction: str | None = None

    @property
    def objective(self) -> str:
        """The value every table (configurations, effects, curves) reports: ``--metric``, else the first objective."""
        return self.metric or self.objectives[0]

    @property
    def has_diagnostics(self) -> bool:
        return any(c.diagnostics is not None and c.diagnostics.layers for c in self.configurations)

    @property
    def direction(self) -> str:
        return self.metric_direction or self.directions[0]


@dataclass
class Report:
    studies: list[StudyReport]
    by: str | None = None
    baseline: str | None = None


# ------------------------------------------------------------------------------------------ helpers


def fmt_value(v: Any) -> str:
    """A searched value as text: ``attention``, ``0.003``, ``true``."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:g}"
    if v is None:
        return "none"
    if isinstance(v, (dict, list)):
        return json.dumps(v, sort_keys=True, separators=(",", ":"))
    return str(v)


def fmt_params(point: dict[str, Any]) -> str:
    return ", ".join(f"{short_axis(k, list(point))}={fmt_value(v)}" for k, v in point.items()) or "no searched values"


def short_axis(axis: str, axes: list[str] | None = None) -> str:
    """``model.mixer.kind`` → ``mixer.kind`` (the ``model.`` prefix is implied) unless that is ambiguous."""
    if axis.startswith("model."):
        short = axis[len("model."):]
        if axes is None or short not in axes:
            return short
    return axis


def _key(point: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, json.dumps(v, sort_keys=True)) for k, v in point.items()))


def _sort_values(values: list[Any], declared: list[Any] | None) -> list[Any]:
    order = {json.dumps(v, sort_keys=True): i for i, v in enumerate(declared or [])}
    seen: list[Any] = []
    for v in values:
        if v not in seen:
            seen.append(v)
    return sorted(seen, key=lambda v: (order.get(json.dumps(v, sort_keys=True), len(order)), seen.index(v)))


def label_for(points: list[dict[str, Any]], axes: dict[str, list[Any]], config_hash: str) -> str:
    """``mixer.kind=mlp, layout=hybrid``; points merged into one configuration show ``layout=uniform|hybrid``."""
    names = list(axes)
    parts = []
    for axis in names:
        vals = _sort_values([p[axis] for p in points if axis in p], axes.get(axis))
        if vals:
            parts.append(f"{short_axis(axis, names)}={'|'.join(fmt_value(v) for v in vals)}")
    return ", ".join(parts) if parts else f"config {config_hash[:8]}"


def point_key(point: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """A hashable identity of a search point (for matching configurations across studies)."""
    return _key(point)


def _finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def _one_per_seed(runs: list[Any], objective: str) -> list[Any]:
    """The completed run with a finite objective of each seed (earliest trial first), sorted by seed."""
    best: dict[int, Any] = {}
    for r in sorted(runs, key=lambda r: (r.trial_number, r.id)):
        if r.status == "completed" and _finite(r.value(objective)) and r.seed not in best:
            best[r.seed] = r
    return [best[s] for s in sorted(best)]


def _mean(xs: list[float]) -> float | None:
    xs = [x for x in xs if _finite(x)]
    return math.fsum(xs) / len(xs) if xs else None


def _first(xs: list[Any]) -> Any:
    return next((x for x in xs if x is not None), None)


def _curve(runs: list[Any], curves: dict[int, list[tuple[int, float]]]) -> list[tuple[int, float, int]]:
    by_step: dict[int, list[float]] = {}
    for r in runs:
        for step, value in curves.get(r.id, []):
            if math.isfinite(value):
                by_step.setdefault(step, []).append(value)
    return [(s, math.fsum(v) / len(v), len(v)) for s, v in sorted(by_step.items())]


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
            if not _finite(value):
                continue
            acc.setdefault(layer, {}).setdefault(name, {}).setdefault(head, []).append(value)
            runs_of.setdefault(layer, set()).add(r.id)
            contributed.add(r.id)
    mixers = _layer_mixers(config)
    layers = []
    for layer in sorted(acc):
        mean: dict[str, float] = {}
        per_head: dict[str, list[float | None]] = {}
        heads = 0
        for name, by_head in acc[layer].items():
            head_ids = sorted(h for h in by_head if h >= 0)
            if head_ids:
                flat = [v for h in head_ids for v in by_head[h]]
                mean[name] = math.fsum(flat) / len(flat)
                per_head[name] = [math.fsum(by_head[h]) / len(by_head[h]) if h in by_head else None
                                  for h in range(head_ids[-1] + 1)]
                heads = max(heads, head_ids[-1] + 1)
            else:
                mean[name] = math.fsum(by_head[-1]) / len(by_head[-1])
        mean = {**{k: mean[k] for k in per_head}, **{k: v for k, v in mean.items() if k not in per_head}}
        layers.append(LayerDiagnostics(layer, mixers.get(layer, (None, None))[0], len(runs_of[layer]), heads,
                                       mean, per_head))

    def why(base: str | None) -> str:
        return NO_MAP if base in TOKEN_WISE else NOT_RECORDED

    missing = [(i, mixer, why(base)) for i, (mixer, base) in sorted(mixers.items()) if i not in acc]
    reason = None
    if not layers:
        if not used:
            reason = NO_RUN
        elif mixers and all(base in TOKEN_WISE for _, base in mixers.values()):
            reason = NO_MAP
        else:
            reason = NOT_RECORDED
    return Diagnostics(layers, missing, reason, len(contributed))


def _status(states: list[str]) -> dict[str, int]:
    counts = dict.fromkeys(STATUSES, 0)
    for state in states:
        counts[state] = counts.get(state, 0) + 1
    return counts


def _dominates(a: list[float], b: list[float], directions: list[str]) -> bool:
    sign = [1 if d == "minimize" else -1 for d in directions]
    le = all(s * x <= s * y for s, x, y in zip(sign, a, b, strict=True))
    lt = any(s * x < s * y for s, x, y in zip(sign, a, b, strict=True))
    return le and lt


# ------------------------------------------------------------------------------------------ analysis


def search_points(study: StudyData) -> list[tuple[dict[str, Any], str]]:
    """Every distinct (search point, configuration hash): from the trial rows, then from the runs."""
    seen: dict[tuple, tuple[dict[str, Any], str]] = {}
    for t in study.trials:
        if t.config_hash and t.search_params:
            seen.setdefault((_key(t.search_params), t.config_hash), (t.search_params, t.config_hash))
    for r in study.runs:
        seen.setdefault((_key(r.search_params), r.config_hash), (r.search_params, r.config_hash))
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


def configurations(study: StudyData, axes: dict[str, list[Any]]) -> list[Configuration]:
    objective, direction = study.metric_name, study.metric_direction  # --metric, else the first objective
    groups: dict[str, list[Any]] = {}
    for r in study.runs:
        groups.setdefault(r.config_hash, []).append(r)
    points: dict[str, list[dict[str, Any]]] = {}
    for point, config_hash in search_points(study):
        if point not in points.setdefault(config_hash, []):
            points[config_hash].append(point)
    out = []
    for config_hash, runs in groups.items():
        used = _one_per_seed(runs, objective)
        reasons: dict[str, int] = {}
        for r in runs:
            if r.status == "failed":
                text = (r.error or "").strip()
                reason = text.splitlines()[0] if text else "no reason recorded"
                reasons[reason] = reasons.get(reason, 0) + 1
        curve_runs = used or [r for r in runs if r.id in study.curves]
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
            other={name: _mean([r.value(name) for r in used]) for name in study.objectives},  # type: ignore[misc]
            params=_first([r.params for r in used] + [r.params for r in runs]),
            flops_per_token=_first([r.flops_per_token for r in used] + [r.flops_per_token for r in runs]),
            tokens_per_second=_mean([r.tokens_per_second for r in used]),  # type: ignore[misc]
            wall_seconds=_mean([r.wall_seconds for r in used]),  # type: ignore[misc]
            wall_seconds_total=math.fsum(r.wall_seconds or 0.0 for r in runs),
            status=_status([r.status for r in runs]),
            failures=sorted(reasons.items(), key=lambda kv: -kv[1]),
            curve=_curve(curve_runs, study.curves),
            diagnostics=diagnostics_of(runs[0].config, used, study.diagnostics),
        ))
    sign = 1 if direction == "minimize" else -1
    out.sort(key=lambda c: (c.objective.estimate is None, sign * (c.objective.estimate or 0.0), c.label))
    for i, c in enumerate(out):
        c.rank = i + 1 if c.objective.estimate is not None else None
    return out


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


def default_baseline(axis: str, values: list[Any], spec: dict[str, Any], requested: str | None) -> tuple[Any, str]:
    """The value to compare against: ``--baseline``, else standard attention's, else the spec's, else the first."""
    if requested is not None:
        import yaml

        parsed = yaml.safe_load(requested)
        for v in values:
            if fmt_value(v) == requested or v == parsed:
                return v, "--baseline"
        listed = ", ".join(fmt_value(v) for v in values)
        raise DeconstructError(f"--baseline {requested!r} is not a value of {axis}; values: {listed}")
    for name in STANDARD_VALUES:
        if name in values:
            return name, "the standard value"
    node: Any = spec
    for key in axis.split("."):
        node = node.get(key) if isinstance(node, dict) else None
    if isinstance(node, dict) and "kind" in node:
        node = node["kind"]
    if node is not None and node in values:
        return node, "the spec's base value"
    return values[0], "the first value"


def axis_effects(study: StudyData, axis: str, values: list[Any], baseline: Any, reason: str) -> AxisEffects:
    """For each value ≠ baseline: the mean of the paired differences over (other searched values, seed) —
    in the order of the search points, then of the seeds — and their bootstrap interval; an unpaired
    comparison of every run of the two values when no pair exists."""
    objective, direction = study.metric_name, study.metric_direction  # --metric, else the first objective
    by_config: dict[str, list[Any]] = {}
    for r in study.runs:
        by_config.setdefault(r.config_hash, []).append(r)
    used = {h: {r.seed: r for r in _one_per_seed(runs, objective)} for h, runs in by_config.items()}
    points: dict[tuple, str] = {}  # search point -> its configuration (the first one seen)
    for point, config_hash in search_points(study):
        if axis in point:
            points.setdefault(_key(point), config_hash)

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
        diffs, base_vals, n_configs = [], [], 0
        for k in value_points:
            b = base_points.get(rest(k))
            if b is None:
                continue
            seeds = sorted(set(runs_of(k)) & set(runs_of(b)))
            n_configs += bool(seeds)
            for s in seeds:
                v, w = runs_of(k)[s].value(objective), runs_of(b)[s].value(objective)
                diffs.append(v - w)
                base_vals.append(w)
        if diffs:
            iv = paired_bootstrap_ci(diffs)
            effects.append(Effect(axis, value, baseline, iv, True, len(diffs), n_configs, n_configs,
                                  len(diffs), len(diffs), _mean(base_vals), direction))
            continue
        # no pair: every run of the value against every run of the baseline (configurations counted once)
        v_configs = list(dict.fromkeys(points[k] for k in value_points if used.get(points[k])))
        b_configs = list(dict.fromkeys(points[k] for k in base_points.values() if used.get(points[k])))
        a = [r.value(objective) for h in v_configs for r in used[h].values()]
        b_ = [r.value(objective) for h in b_configs for r in used[h].values()]
        iv = unpaired_bootstrap_ci(a, b_)
        effects.append(Effect(axis, value, baseline, iv, False, 0, len(v_configs), len(b_configs),
                              len(a), len(b_), _mean(b_), direction))
    return AxisEffects(axis, values, baseline, reason, effects)


def pareto_front(configs: list[Configuration], objectives: list[str], directions: list[str]) -> list[Configuration]:
    """Non-dominated configurations on the mean of every objective (seeds averaged, as Optuna is told)."""
    scored: list[tuple[Configuration, list[float]]] = []
    for c in configs:
        vals = [c.other.get(o) for o in objectives]
        if all(_finite(v) for v in vals):
            scored.append((c, [float(v) for v in vals]))  # type: ignore[arg-type]
    front = [c for c, v in scored if not any(_dominates(w, v, directions) for _, w in scored if w is not v)]
    for c in front:
        c.pareto = True
    return sorted(front, key=lambda c: (c.other.get(objectives[0]) or 0.0, c.label))


def importances(study: StudyData, engine: Any) -> Importances:
    """Optuna's parameter importances (its default evaluator) over the study's completed trials."""
    from sqlalchemy import inspect

    try:
        import optuna
    except ImportError:  # pragma: no cover - optuna is a dependency
        return Importances(None, "", 0, "parameter importances need optuna, which is not installed")
    evaluator = "PED-ANOVA" if int(optuna.__version__.split(".")[0]) >= 5 else "fANOVA"
    evaluator = f"{evaluator} (Optuna {optuna.__version__} default evaluator)"
    if not inspect(engine).has_table("studies"):
        return Importances(None, evaluator, 0, "parameter importances need Optuna's tables, and this storage has none")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        ostudy = optuna.load_study(study_name=study.name, storage=study.storage)
    except KeyError:
        return Importances(None, evaluator, 0, f"parameter importances need the Optuna study {study.name!r}, which this storage lacks")
    trials = ostudy.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    n = len(trials)
    varying = sorted({p for t in trials for p in t.params
                      if len({json.dumps(u.params.get(p), sort_keys=True) for u in trials}) > 1})
    if n < MIN_IMPORTANCE_TRIALS:
        return Importances(None, evaluator, n, f"parameter importances need at least {MIN_IMPORTANCE_TRIALS} "
                           f"completed trials; this study has {n}")
    if not varying:
        return Importances(None, evaluator, n, "no searched parameter takes more than one value among the "
                           "completed trials, so there is nothing to rank")
    target = None
    notes = []
    if len(study.objectives) > 1:
        sign = 1.0 if study.directions[0] == "minimize" else -1.0
        target = lambda t: sign * t.values[0]  # noqa: E731 - importance for the primary objective
        notes.append(f"for {study.objectives[0]} (the first of {len(study.objectives)} objectives)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            values = optuna.importance.get_param_importances(ostudy, params=varying, target=target)
    except Exception as exc:
        return Importances(None, evaluator, n, f"Optuna could not compute importances: {type(exc).__name__}: {exc}")
    notes.append(f"over {n} completed trials")
    if len(varying) == 1:
        notes.append(f"only {varying[0]} varies, so its importance is 1 by construction")
    elif evaluator.startswith("PED-ANOVA") and n < 50:
        top = max(1, math.ceil(0.1 * n))
        notes.append(f"PED-ANOVA compares the top 10% of trials ({top} here) with all of them: "
                     "indicative only below ~50 trials")
    return Importances(dict(values), evaluator, n, "; ".join(notes))


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
        base, reason = default_baseline(axis, axes[axis], study.spec, baseline)
        ae = axis_effects(study, axis, axes[axis], base, reason)
        effects.append(ae)
        for e in ae.effects:
            if not e.paired and e.interval.estimate is not None and len(axis_names) > 1:
                notes.append(f"{axis}={fmt_value(e.value)} vs {fmt_value(base)}: no two runs differ in {axis} alone "
                             "(same other searched values and seed), so this unpaired difference also carries "
                             "the effects of the other axes")
    merged = [c for c in configs if len(c.points) > 1]
    for c in merged:
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
    status = _status([r.status for r in study.runs])
    trial_status = _status([t.state for t in study.trials]) if study.trials else {}
    if not study.runs:
        notes.append("this study has no runs yet")
    return StudyReport(
        name=study.name,
        storage=display_url(study.storage),
        objectives=study.objectives,
        directions=study.directions,
        axes=axes,
        categorical=categorical,
        configurations=configs,
        effects=effects,
        importances=importances(study, engine) if engine is not None else None,
        pareto=pareto,
        status=status,
        trial_status=trial_status,
        curve_metric=study.curve_metric,
        notes=notes,
        deconstruct_version=study.deconstruct_version,
        torch_version=study.torch_version,
        metric=metric,
        metric_direction=study.metric_direction if metric is not None else None,
    )


def build_report(names: list[str], storage: str | None = None, by: str | None = None,
                 baseline: str | None = None, metric: str | None = None) -> Report:
    """Read studies ``names`` from ``storage`` and analyse them (nothing is trained or written). ``metric``:
    report this per-run value (a dc_run column or a key of the runs' ``metrics``) instead of the first
    objective; importances and the Pareto front stay on the study's objectives."""
    from deconstruct.report._load import load_studies, storage_url

    if baseline is not None and by is None:
        raise DeconstructError("--baseline needs --by AXIS (the axis whose value it names)")
    url = storage_url(storage)
    data, engine = load_studies(list(names), url, metric)  # unknown names/metric fail before any work
    try:
        if by is not None and len(data) > 1:  # side by side: an axis only some studies searched is a note
            if not any(any(a == by or a.endswith("." + by) for a in axes_of(d)[0]) for d in data):
                resolve_axis(by, list(axes_of(data[0])[0]), data[0].name)
        studies = [analyse(d, engine, by, baseline, strict=len(data) == 1) for d in data]
    finally:
        engine.dispose()
    return Report(studies, by, baseline)
