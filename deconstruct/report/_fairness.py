"""What makes a comparison in a report fair, and what the report says when one is not.

- **Matched cost.** Two configurations compared by an effect should have the same parameters and the same
  training compute (:func:`deconstruct.metrics.train_flops`: 3 × forward FLOPs/token × tokens); when
  they differ by more than the tolerance (the study's ``study.match.tolerance``, 2 % by default) the effect
  is flagged: "not matched: +15 % parameters".
- **Many comparisons.** An axis with k values other than its baseline makes k comparisons. Each effect gets
  the two-sided paired t-test p-value of its mean difference and the Holm (1979) step-down adjustment over
  the axis's comparisons; a verdict whose interval excludes 0 but whose Holm-adjusted p is ≥ 0.05 says so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from deconstruct.metrics import train_flops
from deconstruct.report._stats import t_two_sided_prob

DEFAULT_TOLERANCE = 0.02
ALPHA = 0.05


def paired_p_value(diffs: Sequence[float]) -> float | None:
    """Two-sided p of a one-sample Student t-test of mean(diffs) = 0; None below 2 differences. All-equal
    differences: 0 when they are not 0 (no spread at all), else 1."""
    n = len(diffs)
    if n < 2:
        return None
    m = sum(diffs) / n
    sd = math.sqrt(sum((d - m) ** 2 for d in diffs) / (n - 1))
    if sd == 0:
        return 1.0 if m == 0 else 0.0
    t = abs(m) / (sd / math.sqrt(n))
    return 1.0 - t_two_sided_prob(t, n - 1)


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjustment: sort the m p-values ascending, p_(i) → max_{j≤i} min(1, (m − j + 1)·p_(j));
    None stays None (and does not count toward m)."""
    present = sorted((p, i) for i, p in enumerate(pvalues) if p is not None)
    m = len(present)
    out: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for rank, (p, i) in enumerate(present):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out


@dataclass(frozen=True)
class Cost:
    params: float | None
    train_flops: float | None  # 3 × forward FLOPs/token × training tokens


def cost_of(params: float | None, flops_per_token: float | None, tokens: float | None) -> Cost:
    return Cost(params, train_flops(flops_per_token, tokens))


def mismatch(value: Cost, baseline: Cost, tolerance: float = DEFAULT_TOLERANCE) -> str | None:
    """"not matched: +15 % parameters, −8 % training FLOPs" when either differs by more than ``tolerance``
    (relative to the baseline); None when both are within it (or unknown)."""
    parts = []
    for name, a, b in (("parameters", value.params, baseline.params), ("training FLOPs", value.train_flops, baseline.train_flops)):
        if a is None or b is None or not b:
            continue
        rel = (a - b) / b
        if abs(rel) > tolerance:
            parts.append(f"{rel * 100:+.0f} % {name}")
    return "not matched: " + ", ".join(parts) if parts else None
