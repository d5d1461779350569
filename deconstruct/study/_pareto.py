"""Best and non-dominated items under the study's directions: the one implementation the runner, the CLI
and the report share (pure Python: importing it loads neither torch nor Optuna).

    >>> pareto_front([(1.0, 5.0), (2.0, 2.0), (3.0, 3.0)], ["minimize", "minimize"], lambda v: v)
    [(1.0, 5.0), (2.0, 2.0)]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


def better(a: float, b: float, direction: str) -> bool:
    """``a`` is strictly better than ``b`` under ``direction`` (minimize or maximize)."""
    return a < b if direction == "minimize" else a > b


def dominates(a: Sequence[float], b: Sequence[float], directions: Sequence[str]) -> bool:
    """``a`` is at least as good as ``b`` on every objective and better on one."""
    pairs = list(zip(a, b, strict=True))
    return all(not better(y, x, d) for (x, y), d in zip(pairs, directions, strict=True)) and any(
        better(x, y, d) for (x, y), d in zip(pairs, directions, strict=True))


def _scored(items: Iterable[T], values: Callable[[T], Sequence[float | None] | None]) -> list[tuple[T, list[float]]]:
    out = []
    for item in items:
        v = values(item)
        if v and all(x is not None and math.isfinite(x) for x in v):
            out.append((item, [float(x) for x in v]))  # type: ignore[arg-type]
    return out


def pareto_front(items: Iterable[T], directions: Sequence[str],
                 values: Callable[[T], Sequence[float | None] | None]) -> list[T]:
    """The items (in their order) whose ``values(item)`` no other item's dominate; items without values (or
    with a missing or non-finite one) take no part."""
    scored = _scored(items, values)
    return [t for t, v in scored if not any(dominates(w, v, directions) for o, w in scored if o is not t)]


def best(items: Iterable[T], direction: str, value: Callable[[T], float | None]) -> T | None:
    """The first item with the best finite ``value(item)``; None when no item has one."""
    found: tuple[T, float] | None = None
    for item, (v,) in _scored(items, lambda x: [value(x)]):
        if found is None or better(v, found[1], direction):
            found = (item, v)
    return None if found is None else found[0]


def completed_values(trial: Any) -> list[float] | None:
    """A stored trial's objective values when it completed (else None): what trials are compared on."""
    return trial.values if trial.state == "completed" and trial.values else None


def pareto_trials(trials: Iterable[T], directions: Sequence[str]) -> list[T]:
    """The completed trials no other completed trial dominates."""
    return pareto_front(trials, directions, completed_values)


def best_trial(trials: Iterable[T], directions: Sequence[str]) -> T | None:
    """The best completed trial of a single-objective study."""
    def first(t: T) -> float | None:
        values = completed_values(t)
        return values[0] if values else None

    return best(trials, directions[0], first)


def tied_with(trials: Iterable[T], winner: T) -> list[T]:
    """The other completed trials whose values equal ``winner``'s (a tie is a tie, not a win: the study run
    summary names them; most often the same configuration reached from two search points)."""
    mine = completed_values(winner)
    return [t for t in trials if t is not winner and getattr(t, "number", None) != getattr(winner, "number", None)
            and (v := completed_values(t)) is not None and mine is not None and v == mine]


def best_record(trials: Sequence[Any], directions: Sequence[str]) -> dict[str, Any] | None:
    """The best completed trial as the CLI and the summary report it, with the trials it ties with."""
    b = best_trial(trials, directions)
    if b is None:
        return None
    ties = [{"number": t.number, "params": t.search_params, "same_configuration": t.config_hash == b.config_hash}
            for t in tied_with(trials, b)]
    return {"number": b.number, "values": b.values, "params": b.search_params, "config_hash": b.config_hash, "ties": ties}
