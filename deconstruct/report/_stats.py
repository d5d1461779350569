"""Small, dependency-free statistics for reports: Student-t intervals and bootstrap intervals.

Seeds are replicates, so a configuration's uncertainty is the spread of its seeds: a two-sided Student-t
interval on the mean (Student 1908), exact for integer degrees of freedom through the finite series of
Abramowitz & Stegun 26.7.3–26.7.4 (no scipy needed). Differences between the values of one axis use a
percentile bootstrap (Efron & Tibshirani 1993, ch. 13) with a fixed RNG seed, so a report is reproducible
to the last digit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

BOOTSTRAP_SEED = 0  #: every bootstrap interval starts from ``numpy.random.default_rng(BOOTSTRAP_SEED)``
BOOTSTRAP_RESAMPLES = 5000


def t_two_sided_prob(t: float, df: int) -> float:
    """P(|T| <= t) for Student's t with ``df`` (integer >= 1) degrees of freedom (A&S 26.7.3/26.7.4)."""
    if df < 1 or int(df) != df:
        raise ValueError(f"degrees of freedom must be a positive integer, not {df!r}")
    if t <= 0:
        return 0.0
    if math.isinf(t):
        return 1.0
    theta = math.atan(t / math.sqrt(df))
    s, c2 = math.sin(theta), math.cos(theta) ** 2
    if df % 2 == 1:  # odd: (2/π)[θ + sinθ cosθ (1 + 2/3 cos²θ + 2·4/(3·5) cos⁴θ + …)]
        if df == 1:
            return 2 * theta / math.pi
        term, total = 1.0, 1.0
        for k in range(1, (df - 1) // 2):
            term *= c2 * (2 * k) / (2 * k + 1)
            total += term
        return 2 / math.pi * (theta + s * math.cos(theta) * total)
    # even: sinθ (1 + 1/2 cos²θ + 1·3/(2·4) cos⁴θ + …)
    term, total = 1.0, 1.0
    for k in range(1, df // 2):
        term *= c2 * (2 * k - 1) / (2 * k)
        total += term
    return s * total


def t_quantile(level: float, df: int) -> float:
    """The critical value t* with P(|T| <= t*) = ``level`` (e.g. 0.95 → 12.706 for df=1, 2.262 for df=9)."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), not {level}")
    # bisection on θ = atan(t/√df) ∈ (0, π/2): the probability is monotone in θ and bounded there
    lo, hi = 0.0, math.pi / 2
    for _ in range(200):
        mid = (lo + hi) / 2
        if t_two_sided_prob(math.sqrt(df) * math.tan(mid), df) < level:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-15:
            break
    return math.sqrt(df) * math.tan((lo + hi) / 2)


@dataclass(frozen=True)
class Interval:
    """A point estimate with an optional interval (``low``/``high`` are None when there is none)."""

    estimate: float | None
    low: float | None
    high: float | None
    n: int
    method: str  # "student-t", "paired bootstrap", "unpaired bootstrap", or why there is no interval
    std: float | None = None

    @property
    def has_interval(self) -> bool:
        return self.low is not None and self.high is not None


def mean_ci(values: Sequence[float], level: float = 0.95) -> Interval:
    """Mean and two-sided Student-t interval: mean ± t*·s/√n with s the sample standard deviation (n-1)."""
    xs = [float(v) for v in values]
    n = len(xs)
    if n == 0:
        return Interval(None, None, None, 0, "no completed runs")
    mean = math.fsum(xs) / n
    if n == 1:
        return Interval(mean, None, None, 1, "n=1: no interval")
    std = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1))
    half = t_quantile(level, n - 1) * std / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n, "student-t", std)


def paired_bootstrap_ci(diffs: Sequence[float], level: float = 0.95, resamples: int = BOOTSTRAP_RESAMPLES,
                        seed: int = BOOTSTRAP_SEED) -> Interval:
    """Mean of paired differences; percentile interval over ``resamples`` resamples of the pairs.

    Exactly: ``rng = numpy.random.default_rng(seed)``; ``idx = rng.integers(0, n, size=(resamples, n))``;
    ``numpy.percentile(d[idx].mean(axis=1), [50 - 50·level, 50 + 50·level])``.
    """
    import numpy as np

    d = np.asarray([float(x) for x in diffs], dtype=np.float64)
    n = int(d.size)
    if n == 0:
        return Interval(None, None, None, 0, "no pairs")
    estimate = float(d.mean())
    if n == 1:
        return Interval(estimate, None, None, 1, "paired, 1 pair: no interval")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(resamples, n))
    lo, hi = np.percentile(d[idx].mean(axis=1), [50 - 50 * level, 50 + 50 * level])
    return Interval(estimate, float(lo), float(hi), n, "paired bootstrap", float(d.std(ddof=1)))


def unpaired_bootstrap_ci(values: Sequence[float], baseline: Sequence[float], level: float = 0.95,
                          resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> Interval:
    """mean(values) − mean(baseline); percentile interval resampling each group on its own.

    Exactly: ``rng = default_rng(seed)``; ``ia = rng.integers(0, na, (resamples, na))`` then
    ``ib = rng.integers(0, nb, (resamples, nb))``; percentiles of ``a[ia].mean(1) − b[ib].mean(1)``.
    ``n`` is the number of runs on the ``values`` side.
    """
    import numpy as np

    a = np.asarray([float(x) for x in values], dtype=np.float64)
    b = np.asarray([float(x) for x in baseline], dtype=np.float64)
    if a.size == 0 or b.size == 0:
        return Interval(None, None, None, int(a.size), "no runs on one side")
    estimate = float(a.mean() - b.mean())
    if a.size < 2 or b.size < 2:
        return Interval(estimate, None, None, int(a.size), "unpaired, a single run on one side: no interval")
    rng = np.random.default_rng(seed)
    ia = rng.integers(0, a.size, size=(resamples, a.size))
    ib = rng.integers(0, b.size, size=(resamples, b.size))
    lo, hi = np.percentile(a[ia].mean(axis=1) - b[ib].mean(axis=1), [50 - 50 * level, 50 + 50 * level])
    return Interval(estimate, float(lo), float(hi), int(a.size), "unpaired bootstrap")
