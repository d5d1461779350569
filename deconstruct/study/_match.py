"""Parameter matching: every configuration of a study gets the parameter count of the baseline.

An ablation that changes the parameter count confounds the principle with capacity. ``study.match``
removes that confound by construction:

    study: {match: {params: mlp_ratio, tolerance: 0.02}}

- ``mlp_ratio``: the channel mixer's width absorbs the difference (one ratio for the whole model, rounded
  to 4 decimals; parameters are linear in it, so two probes solve it and a third verifies);
- ``d_model``: the residual width is chosen per configuration (a multiple of the heads) — everything
  scales with it, so the closest width is searched;
- ``none``: no matching (the default).

The baseline is the spec as written, before any searched value is applied. A configuration that cannot be
brought within the tolerance (no channel mixer to widen, a ratio that would have to be ≤ 0, widths too
coarse) is refused with one line that says which and why; for a finite search space the study refuses to
start, so a table never silently compares unmatched models.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from deconstruct._errors import SpecError

Load = Callable[[dict[str, Any]], Any]  # spec data → ResolvedSpec


def model_cost(resolved: Any) -> Any:
    from deconstruct.model import model_cost as cost  # torch: imported on first use, not at CLI start-up

    return cost(resolved)


class MatchError(SpecError):
    """A configuration whose parameters cannot be matched to the baseline within the tolerance."""


@dataclass(frozen=True)
class Matched:
    resolved: Any  # the ResolvedSpec with the matched value applied
    params: int
    value: float | int | None  # the matched mlp_ratio or d_model (None: no matching)


class Matcher:
    """Applies ``study.match`` to spec data: ``matcher(data) → Matched``."""

    def __init__(self, how: str, tolerance: float, baseline: dict[str, Any], load: Load):
        self.how, self.tolerance, self.load = how, tolerance, load
        self.target = model_cost(load(baseline)).params

    def describe(self) -> str:
        if self.how == "none":
            return "parameters not matched"
        return f"parameters matched to the baseline's {self.target:,} (±{self.tolerance:.0%}) through model.{self.how}"

    def __call__(self, data: dict[str, Any]) -> Matched:
        resolved = self.load(data)
        if self.how == "none":
            return Matched(resolved, model_cost(resolved).params, None)
        found = self._by_ratio(data, resolved) if self.how == "mlp_ratio" else self._by_width(data, resolved)
        off = abs(found.params - self.target) / self.target
        if off > self.tolerance:
            raise MatchError(
                f"{found.params:,} parameters at {self.how} {found.value} is {off:.1%} from the baseline's "
                f"{self.target:,}, beyond the tolerance {self.tolerance:.0%}", path="study.match",
                hint="match through the other of mlp_ratio | d_model, or raise study.match.tolerance",
            )
        return found

    # -- the two ways ----------------------------------------------------------------------------------------
    def _with(self, data: dict[str, Any], key: str, value: Any) -> Any:
        data = copy.deepcopy(data)
        data.setdefault("model", {})[key] = value
        return self.load(data)

    def _by_ratio(self, data: dict[str, Any], resolved: Any) -> Matched:
        r0 = float(resolved.spec.model.mlp_ratio)
        p0 = model_cost(resolved).params
        p1 = model_cost(self._with(data, "mlp_ratio", r0 + 1.0)).params
        if p1 == p0:
            if abs(p0 - self.target) <= self.tolerance * self.target:  # nothing to absorb, nothing needed
                return Matched(resolved, p0, r0)
            raise MatchError(
                "cannot be matched through mlp_ratio: no layer has a channel mixer whose width follows it",
                path="study.match.params", hint="use params: d_model",
            )
        ratio = round(r0 + (self.target - p0) / (p1 - p0), 4)
        if ratio <= 0:
            raise MatchError(
                f"would need mlp_ratio {ratio} ≤ 0: its token mixers alone have {p0 - self.target:+,} parameters "
                f"against the baseline", path="study.match.params", hint="use params: d_model",
            )
        matched = self._with(data, "mlp_ratio", ratio)
        return Matched(matched, model_cost(matched).params, ratio)

    def _by_width(self, data: dict[str, Any], resolved: Any) -> Matched:
        m = resolved.spec.model
        d0, step = int(m.d_model), int(m.heads) * (2 if m.positions == "rope" else 1)
        p0 = model_cost(resolved).params
        guess = d0 * (self.target / p0) ** 0.5  # parameters grow about as d²
        centre = max(1, round(guess / step))
        best: Matched | None = None
        for k in range(max(1, centre - 3), centre + 4):
            try:
                candidate = self._with(data, "d_model", k * step)
            except SpecError:
                continue  # a width this mixer's heads do not divide
            params = model_cost(candidate).params
            if best is None or abs(params - self.target) < abs(best.params - self.target):
                best = Matched(candidate, params, k * step)
        if best is None:
            raise MatchError(f"no width near {round(guess)} is valid for this configuration", path="study.match.params")
        return best


def match_space(space: Any, base: dict[str, Any], matcher: Matcher) -> list[tuple[dict[str, Any], Matched]]:
    """Match every configuration of a finite search space (``space.samples(base)``), or raise for the first
    that cannot be matched, naming its searched values. Returns (searched values, Matched) per configuration."""
    out = []
    for sample in space.samples(base):
        try:
            resolved, effective = space.resolve(base, sample, lambda d: matcher(d).resolved)
        except MatchError as exc:
            what = ", ".join(f"{k}={v}" for k, v in sample.params.items()) or "the baseline"
            raise MatchError(f"configuration {what}: {exc.message}", path=exc.path, hint=exc.hint) from None
        value = getattr(resolved.spec.model, matcher.how, None) if matcher.how != "none" else None
        out.append((effective.params, Matched(resolved, model_cost(resolved).params, value)))
    return out
