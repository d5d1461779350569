"""deconstruct.study._pareto: the one best/Pareto implementation, checked against hand-worked fronts and
against Optuna's own ``best_trials``."""

from __future__ import annotations

import random
from types import SimpleNamespace

import optuna

from deconstruct.study import best, best_trial, dominates, pareto_front, pareto_trials


def test_a_hand_worked_front_under_mixed_directions():
    points = [(1.0, 0.5), (2.0, 0.9), (0.5, 0.1), (2.0, 0.4), (1.0, 0.5)]  # (loss ↓, accuracy ↑)
    front = pareto_front(points, ["minimize", "maximize"], lambda p: p)
    assert front == [(1.0, 0.5), (2.0, 0.9), (0.5, 0.1), (1.0, 0.5)]  # (2.0, 0.4) is dominated by (1.0, 0.5)
    assert dominates((1.0, 0.5), (2.0, 0.4), ["minimize", "maximize"])
    assert not dominates((1.0, 0.5), (1.0, 0.5), ["minimize", "maximize"])  # equal: neither dominates


def test_items_without_finite_values_take_no_part():
    items = [(1.0,), (float("nan"),), None, (3.0,)]
    assert pareto_front(items, ["maximize"], lambda p: p) == [(3.0,)]
    assert best(items, "minimize", lambda p: p[0] if p else None) == (1.0,)
    assert best([], "minimize", lambda p: p) is None


def test_trials_front_and_best_match_optuna():
    rng = random.Random(0)
    values = [[rng.random(), rng.random()] for _ in range(40)]
    study = optuna.create_study(directions=["minimize", "maximize"])
    for v in values:
        study.add_trial(optuna.trial.create_trial(values=v, params={}, distributions={}))
    rows = [SimpleNamespace(number=i, state="completed", values=v) for i, v in enumerate(values)]
    rows.append(SimpleNamespace(number=99, state="failed", values=[-1.0, 2.0]))  # would dominate: not completed
    assert {t.number for t in pareto_trials(rows, ["minimize", "maximize"])} == {t.number for t in study.best_trials}
    assert best_trial(rows, ["maximize"]).number == max(range(40), key=lambda i: values[i][0])


def test_a_tie_for_best_is_named_not_hidden():
    """Two search points that resolve to one configuration reuse the same runs, so their values are equal:
    the best is reported with the trial it ties with (and that they are the same configuration)."""
    from types import SimpleNamespace as T

    from deconstruct.study import best_record

    trials = [T(number=0, state="completed", values=[2.1], search_params={"layout": "hybrid"}, config_hash="a"),
              T(number=1, state="completed", values=[2.4], search_params={"layout": "uniform", "kind": "mlp"}, config_hash="b"),
              T(number=2, state="completed", values=[2.1], search_params={"layout": "uniform"}, config_hash="a"),
              T(number=3, state="completed", values=[2.1], search_params={"kind": "x"}, config_hash="c"),
              T(number=4, state="failed", values=None, search_params={}, config_hash="")]
    best = best_record(trials, ["minimize"])
    assert best["number"] == 0
    assert best["ties"] == [{"number": 2, "params": {"layout": "uniform"}, "same_configuration": True},
                            {"number": 3, "params": {"kind": "x"}, "same_configuration": False}]
    assert best_record(trials[:2], ["minimize"])["ties"] == []
