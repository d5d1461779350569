"""The report's statistics: exact Student-t quantiles, t-intervals, deterministic bootstrap intervals."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest

from deconstruct.report import mean_ci, paired_bootstrap_ci, t_quantile, unpaired_bootstrap_ci
from deconstruct.report._stats import t_two_sided_prob

# two-sided 95% critical values from any printed t-table
T_TABLE_95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 9: 2.262, 10: 2.228, 20: 2.086, 30: 2.042,
              60: 2.000, 120: 1.980}


@pytest.mark.parametrize("df,expected", sorted(T_TABLE_95.items()))
def test_t_quantile_matches_the_printed_table(df, expected):
    assert t_quantile(0.95, df) == pytest.approx(expected, abs=6e-4)


def test_t_quantile_matches_scipy_exactly():
    stats = pytest.importorskip("scipy.stats")
    for df in [*range(1, 41), 57, 100, 1000]:
        for level in (0.5, 0.9, 0.95, 0.99):
            assert t_quantile(level, df) == pytest.approx(stats.t.ppf(0.5 + level / 2, df), rel=1e-10)


def test_t_probability_is_a_cdf():
    assert t_two_sided_prob(0.0, 3) == 0.0 and t_two_sided_prob(math.inf, 3) == 1.0
    assert t_two_sided_prob(1.0, 1) == pytest.approx(0.5)  # Cauchy: P(|T| <= 1) = 1/2
    with pytest.raises(ValueError):
        t_quantile(0.95, 0)


def test_mean_ci_is_the_student_t_interval():
    xs = [5.41, 5.39, 5.45, 5.40]
    iv = mean_ci(xs)
    half = t_quantile(0.95, 3) * statistics.stdev(xs) / math.sqrt(4)
    assert iv.estimate == pytest.approx(statistics.fmean(xs))
    assert (iv.low, iv.high) == pytest.approx((iv.estimate - half, iv.estimate + half))
    assert iv.n == 4 and iv.method == "student-t" and iv.std == pytest.approx(statistics.stdev(xs))


def test_mean_ci_without_enough_seeds_says_so():
    one = mean_ci([5.0])
    assert one.estimate == 5.0 and not one.has_interval and one.n == 1 and "no interval" in one.method
    none = mean_ci([])
    assert none.estimate is None and none.n == 0


def test_paired_bootstrap_is_the_documented_procedure_and_deterministic():
    d = [0.01, -0.02, 0.03, 0.005, 0.0]
    iv = paired_bootstrap_ci(d)
    rng = np.random.default_rng(0)
    idx = rng.integers(0, 5, size=(5000, 5))
    lo, hi = np.percentile(np.asarray(d)[idx].mean(axis=1), [2.5, 97.5])
    assert (iv.estimate, iv.low, iv.high) == (pytest.approx(np.mean(d)), lo, hi)
    assert paired_bootstrap_ci(d) == iv  # same numbers every time
    assert iv.low <= iv.estimate <= iv.high and iv.method == "paired bootstrap"
    assert not paired_bootstrap_ci([0.1]).has_interval


def test_unpaired_bootstrap_resamples_each_side():
    a, b = [1.0, 1.2, 0.9], [0.5, 0.7]
    iv = unpaired_bootstrap_ci(a, b)
    rng = np.random.default_rng(0)
    ia, ib = rng.integers(0, 3, size=(5000, 3)), rng.integers(0, 2, size=(5000, 2))
    lo, hi = np.percentile(np.asarray(a)[ia].mean(1) - np.asarray(b)[ib].mean(1), [2.5, 97.5])
    assert (iv.estimate, iv.low, iv.high) == (pytest.approx(np.mean(a) - np.mean(b)), lo, hi)
    assert not unpaired_bootstrap_ci([1.0], b).has_interval


def test_effect_verdict_needs_enough_pairs():
    from deconstruct.report._model import MIN_CONFIDENT_N, Effect
    from deconstruct.report._stats import Interval

    def effect(low, high, n_pairs, direction="minimize"):
        return Effect(axis="a", value="x", baseline="b", interval=Interval(0.5 * (low + high), low, high, n_pairs, "paired bootstrap"),
                      paired=True, n_pairs=n_pairs, n_configs=1, n_baseline_configs=1, n_runs=n_pairs, n_baseline_runs=n_pairs,
                      baseline_mean=1.0, direction=direction)

    assert effect(0.1, 0.2, MIN_CONFIDENT_N).verdict == "worse"
    assert effect(-0.2, -0.1, MIN_CONFIDENT_N).verdict == "better"
    assert effect(-0.2, -0.1, MIN_CONFIDENT_N, "maximize").verdict == "worse"
    assert effect(-0.1, 0.1, 2).verdict == "unclear (CI spans 0)"
    assert effect(0.1, 0.2, 2).verdict.startswith("worse? (only 2 pairs")
