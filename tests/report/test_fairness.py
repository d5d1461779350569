"""Multiple-comparison and cost-matching helpers of the report, against independent computations."""

from __future__ import annotations

import pytest

from deconstruct.report._fairness import Cost, holm, mismatch, paired_p_value


def test_holm_equals_a_hand_computation():
    # m = 4 p-values; sorted 0.01, 0.02, 0.03, 0.5 → ×4, ×3, ×2, ×1 = 0.04, 0.06, 0.06 (max with 0.06), 0.5
    p = [0.03, 0.01, 0.5, 0.02]
    assert holm(p) == pytest.approx([0.06, 0.04, 0.5, 0.06])
    assert holm([0.9, 0.8]) == pytest.approx([1.0, 1.0])  # 0.8 × 2 is capped at 1, and 0.9 may not fall below it
    assert holm([0.04, 0.3]) == pytest.approx([0.08, 0.3])
    assert holm([None, 0.2]) == [None, pytest.approx(0.2)]  # a missing p-value does not count toward m


def test_paired_p_value_equals_scipys_t_test():
    from scipy import stats

    diffs = [0.12, 0.08, 0.15, 0.03, 0.11]
    assert paired_p_value(diffs) == pytest.approx(stats.ttest_1samp(diffs, 0.0).pvalue, rel=1e-9)
    diffs = [0.4, -0.1, 0.05]
    assert paired_p_value(diffs) == pytest.approx(stats.ttest_1samp(diffs, 0.0).pvalue, rel=1e-9)
    assert paired_p_value([0.1]) is None


def test_mismatch_names_what_differs_beyond_the_tolerance():
    base = Cost(params=100_000, train_flops=1e12)
    assert mismatch(Cost(101_000, 1.01e12), base) is None
    assert mismatch(Cost(115_000, 1e12), base) == "not matched: +15 % parameters"
    assert mismatch(Cost(100_000, 0.8e12), base, tolerance=0.1) == "not matched: -20 % training FLOPs"
