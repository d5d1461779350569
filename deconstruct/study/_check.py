"""The search space validated before anything trains (``spec check`` and ``study run`` both call this).

A study whose search names a misspelt mixer would otherwise start, fail those trials one by one at run time
and report a table with holes. So every value the search can produce is resolved first:

- each categorical value and each range endpoint (every value of a small integer range) must give a valid
  spec together with *some* choice of the other searched values (an option such as ``kv_heads: 3`` may
  need ``heads: 6`` from another searched key); an option that no mixer of the search takes is an error;
- for a grid or bruteforce study, every distinct configuration of the grid must resolve (a searched mixer
  option that does not apply to the sampled mixer is dropped, as the runner does);
- what Optuna itself would refuse (a log range through zero, a range without a step under the grid
  sampler, an empty list, a path the spec does not have) is refused here too.

A failure is one :class:`~deconstruct.SpecError` with the file, the line of the search entry (of the list
item when there is one), the searched path and the value that fails. Each point costs one spec resolution
(about a millisecond), so a hundred points validate in well under a second.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deconstruct._errors import SpecError
from deconstruct.study._space import Param, SearchSpace, canonical, normalize

#: integer ranges up to this many values are checked value by value; longer ones at their endpoints
_ALL_VALUES = 64
#: combinations of the other searched keys tried before a value is declared valid nowhere
_COMBINATIONS = 64


@dataclass
class CheckedSearch:
    """A spec file whose search space resolved everywhere: its data (after ``--set``), text and space."""

    data: dict[str, Any]
    text: str
    space: SearchSpace
    points: int | None  # distinct configurations of a finite space (None: continuous)


class _Locate:
    """Turns a problem with a searched path into a SpecError at the search entry's line."""

    def __init__(self, file: str | None, lines: dict[tuple[Any, ...], int], overridden: bool):
        self.file, self.lines, self.overridden = file, lines, overridden

    def __call__(self, path: str | None, message: str, index: int | None = None, hint: str | None = None) -> SpecError:
        keys: tuple[Any, ...] = ("search",) if path is None else ("search", path)
        if self.overridden:
            return SpecError(message, file="--set", path=".".join(map(str, keys)), hint=hint)
        line = self.lines.get((*keys, index)) if index is not None else None
        line = line or self.lines.get(keys) or self.lines.get(("search",))
        return SpecError(message, file=self.file, line=line, path=".".join(map(str, keys)), hint=hint)


def check_search(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> CheckedSearch:
    """Validate a spec file (base configuration and every searched value); see the module docstring."""
    from deconstruct.spec import apply_override, load_spec
    from deconstruct.spec._yaml import read_yaml_file

    resolved = load_spec(path, overrides)  # the base configuration, with file/line errors
    data, lines, text = read_yaml_file(path)
    touched = [apply_override(data, assignment) for assignment in overrides]
    data.setdefault("name", Path(path).stem)
    locate = _Locate(str(path), lines, overridden=any(keys[:1] == ("search",) for keys in touched))
    try:
        check_objectives(resolved.spec.task.name, resolved.spec.study.objectives)
    except SpecError as exc:  # located at the objective's line of the file
        line = lines.get(("study", "objective")) or lines.get(("study", "objectives"))
        raise SpecError(exc.message, path=exc.path, file=str(path), line=line, hint=exc.hint) from None
    space, points = check_space(normalize(data), resolved.spec, locate=locate)
    return CheckedSearch(data=data, text=text, space=space, points=points)


def check_objectives(task: str, objectives: list[str]) -> None:
    """Every objective is a metric that runs of ``task`` carry (:func:`deconstruct.metrics.measured`)."""
    from deconstruct import metrics

    measured = {n for m in metrics.measured(task) for n in (m.name, *m.aliases)}
    for name in objectives:
        if name not in measured:
            raise SpecError(f"unknown objective {name!r} for task {task!r}", path="study.objective",
                            hint=f"measured: {', '.join(sorted(measured))}")


def check_space(base: dict[str, Any], spec: Any, *, locate: Any = None) -> tuple[SearchSpace, int | None]:
    """Validate the search space of validated spec data ``base`` (``spec`` is its :class:`Spec`). Returns
    the space and, for a grid/bruteforce study, its number of distinct configurations."""
    from deconstruct.plugins import get_registry
    from deconstruct.spec import load_spec

    locate = locate or _Locate(None, {}, overridden=False)
    finite = spec.study.sampler in ("grid", "bruteforce")
    try:
        space = SearchSpace(spec, get_registry())
        if finite:
            space.grid_space()
    except SpecError as exc:
        raise locate((exc.path or "search.").removeprefix("search.") or None, exc.message, hint=exc.hint) from None
    if not space.params:
        return space, 1 if finite else None
    for p in space.params:
        _check_values(space, base, p, load_spec, locate)
    if not finite:
        return space, None
    seen: set[Any] = set()
    grids = space.grid_space()
    for combo in itertools.product(*(grids[p.path] for p in space.params)):
        values = dict(zip((p.path for p in space.params), combo, strict=True))
        sample = space.apply(base, lambda q, _v=values: _v[q.path])
        key = canonical(sample.encoded)
        if key in seen:
            continue
        seen.add(key)
        try:
            space.resolve(base, sample, load_spec)
        except SpecError as exc:
            shown = ", ".join(f"{k}={v!r}" for k, v in sample.params.items())
            raise locate(None, f"the configuration {shown} gives no valid spec: {exc}") from None
    return space, len(seen)


def _values(p: Param) -> list[Any]:
    """The (encoded) values of ``p`` to check: all of a list or a short range, else the endpoints."""
    grid = p.grid()
    if grid is not None and (p.kind == "categorical" or len(grid) <= _ALL_VALUES):
        return grid
    low, high = (int(p.low), int(p.high)) if p.kind == "int" else (p.low, p.high)
    return [low, high]


def _check_values(space: SearchSpace, base: dict[str, Any], p: Param, load: Any, locate: Any) -> None:
    others = [q for q in space.params if q is not p and q.grid() is not None]
    all_paths = frozenset(q.path for q in space.params)
    for i, value in enumerate(_values(p)):
        first: SpecError | None = None
        applied = False
        for chosen in _combinations(others):
            chosen = {**chosen, p.path: value}
            probe = space.apply(base, lambda q, _c=chosen: _c[q.path], drop=all_paths - set(chosen))
            if p.path not in probe.encoded:
                continue  # the mixer chosen here does not take this option
            applied = True
            try:
                load(probe.data)
                break
            except SpecError as exc:
                first = first or exc
        else:
            index = i if p.kind == "categorical" else None
            shown = repr(p.decode(value))
            if not applied and p.conditional is not None:
                _, option, kind = p.conditional
                raise locate(p.path, f"no {kind.replace('_', ' ')} this search can choose takes the option {option!r}, "
                             f"so {shown} would never be used", index,
                             hint="search the kind too, or set it in the model section")
            raise locate(p.path, f"the value {shown} gives no valid spec: {first}", index)


def _combinations(others: list[Param]) -> Any:
    """The other searched keys at their base values, then one at a time, then a bounded product."""
    yield {}
    for q in others:
        for v in q.grid() or []:
            yield {q.path: v}
    yield from itertools.islice(
        (dict(zip((q.path for q in others), combo, strict=True)) for combo in itertools.product(*(q.grid() or [] for q in others))),
        _COMBINATIONS,
    )
