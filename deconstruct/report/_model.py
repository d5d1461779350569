"""The report's data model: what a report says about a study, as plain dataclasses (no I/O, no formatting).

Vocabulary: a *search point* is one assignment of the searched values (``RunRow.search_params``); a
*configuration* is one resolved model+training setup (``RunRow.config_hash``). Several search points can
resolve to the same configuration (e.g. ``layout=hybrid`` changes nothing when the mixer already is
attention); the configuration table merges them, the effect of an axis compares search points.

    Report ─ studies: [StudyReport] ─ configurations: [Configuration] ─ diagnostics: Diagnostics ─ [LayerDiagnostics]
                                    ├ effects: [AxisEffects] ─ effects: [Effect]
                                    └ importances: Importances

Searched values are named as text by :func:`fmt_value` (``attention``, ``0.003``, ``true``) and axes by
:func:`short_axis` (``mixer.kind`` for ``model.mixer.kind``); numbers go through :mod:`deconstruct.metrics`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from deconstruct.report._stats import Interval

STATUSES = ("completed", "pruned", "failed", "running")
#: below this many paired differences (or runs a side, unpaired) the bootstrap interval is not trusted
MIN_CONFIDENT_N = 5


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


def short_axis(axis: str, axes: list[str] | None = None) -> str:
    """``model.mixer.kind`` → ``mixer.kind`` (the ``model.`` prefix is implied) unless that is ambiguous."""
    if axis.startswith("model."):
        short = axis[len("model."):]
        if axes is None or short not in axes:
            return short
    return axis


def fmt_params(point: dict[str, Any]) -> str:
    """A search point as ``mixer.kind=mlp, layout=hybrid``."""
    return ", ".join(f"{short_axis(k, list(point))}={fmt_value(v)}" for k, v in point.items()) or "no searched values"


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
    runs: list[Any]  # every run (deconstruct.store.RunInfo), any status
    used: list[Any]  # one completed run per seed, with a finite objective: what the statistics use
    objective: Interval  # mean and Student-t interval of the reported value over ``used``
    other: dict[str, float | None]  # mean of each of the study's objectives
    params: int | None
    flops_per_token: int | None
    tokens: float | None  # training tokens per run, mean over ``used``
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

    def axis_values(self, axis: str) -> list[Any]:
        """The distinct values ``axis`` takes among this configuration's search points."""
        out: list[Any] = []
        for p in self.points:
            if axis in p and p[axis] not in out:
                out.append(p[axis])
        return out


@dataclass
class Effect:
    """Mean difference ``value − baseline`` of the reported value along one axis."""

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
    n_identical: int = 0  # pairs left out because both sides resolve to the same model (not evidence)
    p_value: float | None = None  # two-sided paired t-test of the mean difference (paired effects only)
    p_holm: float | None = None  # Holm-adjusted over the comparisons of this axis
    mismatch: str | None = None  # "not matched: +15 % parameters" when the two sides' costs differ

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
        if self.p_holm is not None and self.p_holm >= 0.05:  # many comparisons: the family-wise error rules
            return f"{word}? (not after Holm's adjustment, p = {self.p_holm:.3g})"
        return word


@dataclass
class AxisEffects:
    axis: str
    values: list[Any]
    baseline: Any
    baseline_reason: str
    effects: list[Effect]


@dataclass
class Interaction:
    """The effect of ``axis`` at each value of ``other`` (the conditional effects beside the marginal one)."""

    axis: str
    other: str
    by_value: list[tuple[Any, AxisEffects]]  # (value of ``other``, the effects of ``axis`` among its points)


@dataclass
class Importances:
    values: dict[str, float] | None  # parameter -> normalised importance, largest first
    evaluator: str
    n_trials: int
    note: str  # why there are none, or how to read them
    shown: bool = True  # False: too few trials to show the numbers (they stay in the JSON, marked so)


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
    interactions: list[Interaction] = field(default_factory=list)
    matched: str = ""  # what the study matched (study.match), in words
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
