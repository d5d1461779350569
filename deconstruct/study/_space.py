"""The search space: the spec's ``search`` section as Optuna distributions, applied to the raw spec.

``search`` maps a dotted spec path to a list (categorical) or a range ``{low, high, log, step}`` (int or
float). A trial's values are written into the spec data with :func:`deconstruct.spec.set_path` and the
result goes through :func:`deconstruct.spec.load_spec`, so every path the spec accepts can be searched:
``model.layout``, ``model.overrides.3.kind``, ``model.layout.2`` of an explicit layout list, ``train.lr``.

Conditional keys. A mixer option exists only for the mixers whose options model declares it (``kv_heads``
for ``attention``, ``width`` for ``mlp``), and a preset fixes some options itself. When the mixer sampled
for a node does not take a searched option, that option is *inactive* for the trial: it is not suggested to
Optuna (define-by-run, as Optuna expects for conditional spaces), not written into the spec, and recorded
in the trial's ``inactive_params``. Kinds and layouts are therefore sampled first.

Choices that are not scalars (a per-layer layout list, a ``{kind: …, option: …}`` mixer) are handed to
Optuna as their JSON text and decoded before they reach the spec.
"""

from __future__ import annotations

import copy
import difflib
import itertools
import json
import math
from dataclasses import dataclass
from typing import Any

from deconstruct._errors import PluginError, SpecError

_SCALARS = (type(None), bool, int, float, str)


def parse_path(dotted: str) -> list[Any]:
    """``model.overrides.3.kind`` -> ``['model', 'overrides', 3, 'kind']`` (as ``--set`` parses it)."""
    return [int(k) if k.lstrip("-").isdigit() else k for k in dotted.strip().split(".")]


def encode(value: Any) -> Any:
    """A value Optuna can store as a categorical choice: scalars as they are, anything else as JSON."""
    return value if isinstance(value, _SCALARS) else json.dumps(value, sort_keys=True)


def canonical(params: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    """A hashable, float-tolerant key of a parameter assignment (to compare trials with grid points)."""
    def norm(v: Any) -> Any:
        return float(f"{v:.12g}") if isinstance(v, float) else v

    return tuple(sorted((k, norm(v)) for k, v in params.items()))


def _mixer_node(keys: list[Any]) -> tuple[list[Any], str, str] | None:
    """(node keys, option, 'mixer'|'channel_mixer') when ``keys`` names an option of a mixer node."""
    if len(keys) < 3 or keys[0] != "model" or not isinstance(keys[-1], str) or keys[-1] == "kind":
        return None
    node, option = keys[:-1], keys[-1]
    if node in (["model", "mixer"], ["model", "standard"]):
        return node, option, "mixer"
    if node == ["model", "channel_mixer"]:
        return node, option, "channel_mixer"
    if len(node) == 3 and node[1] in ("overrides", "layout") and isinstance(node[2], int):
        return node, option, "mixer"
    return None


def _get(data: Any, keys: list[Any]) -> Any:
    node = data
    for key in keys:
        if isinstance(node, dict):
            node = node.get(key, node.get(str(key)) if isinstance(key, int) else None)
        elif isinstance(node, list) and isinstance(key, int) and -len(node) <= key < len(node):
            node = node[key]
        else:
            return None
        if node is None:
            return None
    return node


def normalize(data: dict[str, Any]) -> dict[str, Any]:
    """Spec data back from JSON: ``model.overrides`` keys are layer numbers again (``"3"`` -> ``3``)."""
    model = data.get("model")
    if isinstance(model, dict) and isinstance(model.get("overrides"), dict):
        model["overrides"] = {int(k) if isinstance(k, str) and k.isdigit() else k: v for k, v in model["overrides"].items()}
    return data


@dataclass
class Param:
    """One searched path."""

    path: str
    keys: list[Any]
    kind: str  # categorical | int | float
    choices: list[Any] | None = None  # categorical: the values as written in the spec
    low: float = 0.0
    high: float = 0.0
    step: float | None = None
    log: bool = False
    conditional: tuple[list[Any], str, str] | None = None  # (mixer node, option, kind of node)

    @property
    def encoded(self) -> list[Any]:
        return [encode(c) for c in self.choices or []]

    def decode(self, value: Any) -> Any:
        if self.kind != "categorical":
            return value
        for choice in self.choices or []:
            if encode(choice) == value:
                return copy.deepcopy(choice)
        return value

    def grid(self) -> list[Any] | None:
        """The finite list of (encoded) values, or None for a continuous range."""
        if self.kind == "categorical":
            return self.encoded
        if self.kind == "int":
            return list(range(int(self.low), int(self.high) + 1, int(self.step or 1)))
        if self.step is None:
            return None
        n = int(math.floor((self.high - self.low) / self.step + 1e-9)) + 1
        return [float(f"{self.low + i * self.step:.12g}") for i in range(n)]

    def distribution(self) -> Any:
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        try:
            if self.kind == "categorical":
                return CategoricalDistribution(self.encoded)
            if self.kind == "int":
                return IntDistribution(int(self.low), int(self.high), log=self.log, step=int(self.step or 1))
            return FloatDistribution(self.low, self.high, log=self.log, step=self.step)
        except ValueError as exc:
            raise SpecError(str(exc).replace("`", ""), path=f"search.{self.path}") from None

    def suggest(self, trial: Any) -> Any:
        """Ask Optuna for this parameter (encoded value)."""
        if self.kind == "categorical":
            return trial.suggest_categorical(self.path, self.encoded)
        if self.kind == "int":
            return trial.suggest_int(self.path, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.path, self.low, self.high, step=self.step, log=self.log)


@dataclass
class Sample:
    """A trial's configuration: the spec data with the values applied, and what was (not) applied."""

    data: dict[str, Any]
    params: dict[str, Any]  # active paths -> values as written in the spec (decoded)
    encoded: dict[str, Any]  # active paths -> values as Optuna holds them
    inactive: list[str]  # searched paths that do not apply to this trial's mixers


class SearchSpace:
    """The searched paths of a spec, ordered so that kinds and layouts are sampled before mixer options."""

    def __init__(self, spec: Any, registry: Any):
        self.registry = registry
        defaults = spec.model_dump(mode="python")
        params = []
        for path, space in spec.search.items():
            keys = parse_path(path)
            self._check_path(path, keys)
            if isinstance(space, list):
                if not space:
                    raise SpecError("a searched list needs at least one value", path=f"search.{path}")
                params.append(Param(path, keys, "categorical", choices=list(space), conditional=_mixer_node(keys)))
                continue
            default = _get(defaults, keys)
            integral = all(float(v).is_integer() for v in (space.low, space.high, space.step or 1))
            is_int = isinstance(default, int) and not isinstance(default, bool) if default is not None else integral
            if is_int and not integral:
                raise SpecError(f"{path} is an integer: low, high and step must be whole numbers", path=f"search.{path}")
            p = Param(path, keys, "int" if is_int else "float", low=space.low, high=space.high, step=space.step,
                      log=space.log, conditional=_mixer_node(keys))
            p.distribution()  # validate now: one clear line, before any trial
            params.append(p)
        # structural paths (kinds, layouts, scalars) first, then mixer options; stable otherwise
        self.params = sorted(params, key=lambda p: (p.conditional is not None, len(p.keys)))
        self.order = {p.path: i for i, p in enumerate(params)}  # as written in the spec (for display)

    # -- checks -------------------------------------------------------------------------------------
    def _check_path(self, path: str, keys: list[Any]) -> None:
        from deconstruct.spec import ModelSpec, TrainSpec

        where = f"search.{path}"
        if keys[:2] == ["train", "seeds"]:
            raise SpecError("seeds are replicates, not a search parameter: list them in train.seeds", path=where)
        if len(keys) >= 2 and keys[0] in ("model", "train"):
            fields = list((ModelSpec if keys[0] == "model" else TrainSpec).model_fields)
            if keys[1] not in fields:
                close = difflib.get_close_matches(str(keys[1]), fields, n=1)
                hint = (f"did you mean {keys[0]}.{close[0]}? " if close else "") + "valid: " + ", ".join(fields)
                raise SpecError(f"unknown key {keys[1]!r} in a search path", path=where, hint=hint)
        node = _mixer_node(keys)
        if node is not None:
            _, option, kind = node
            known = self._all_options(kind)
            if known and option not in known:
                close = difflib.get_close_matches(option, sorted(known), n=1)
                hint = (f"did you mean {close[0]!r}? " if close else "") + "options: " + ", ".join(sorted(known))
                raise SpecError(f"no registered {kind.replace('_', ' ')} has an option {option!r}", path=where, hint=hint)

    def _all_options(self, kind: str) -> set[str]:
        names: set[str] = set()
        for entry in self.registry.entries.get(kind, {}).values():
            if entry.options is not None:
                names.update(entry.options.model_fields)
        return names

    # -- sizes --------------------------------------------------------------------------------------
    @property
    def finite(self) -> bool:
        return all(p.grid() is not None for p in self.params)

    def grid_size(self) -> int | None:
        """Number of points of the full product (None when a range has no step)."""
        if not self.finite:
            return None
        return math.prod(len(p.grid() or []) for p in self.params) if self.params else 1

    def grid_space(self) -> dict[str, list[Any]]:
        """``{path: [encoded values]}`` for :class:`optuna.samplers.GridSampler`."""
        out = {}
        for p in self.params:
            values = p.grid()
            if values is None:
                raise SpecError(
                    "the grid and bruteforce samplers need a finite space: give this range a step, or list the values",
                    path=f"search.{p.path}",
                )
            out[p.path] = values
        return out

    def points(self, base: dict[str, Any]) -> set[tuple[tuple[str, Any], ...]]:
        """The distinct configurations of a finite space: each full grid point reduced to its active paths."""
        return {canonical(sample.encoded) for sample in self.samples(base)}

    def samples(self, base: dict[str, Any]) -> list[Sample]:
        """One :class:`Sample` per distinct configuration of a finite space, in grid order."""
        grids = self.grid_space()
        out: dict[tuple[tuple[str, Any], ...], Sample] = {}
        for combo in itertools.product(*(grids[p.path] for p in self.params)):
            values = dict(zip((p.path for p in self.params), combo, strict=True))
            sample = self.apply(base, lambda p, _v=values: _v[p.path])
            out.setdefault(canonical(sample.encoded), sample)
        return list(out.values())

    # -- sampling -----------------------------------------------------------------------------------
    def sample(self, trial: Any, base: dict[str, Any]) -> Sample:
        """Suggest every active parameter through ``trial`` and apply the values to a copy of ``base``."""
        return self.apply(base, lambda p: p.suggest(trial))

    def apply(self, base: dict[str, Any], value_of: Any, drop: frozenset[str] = frozenset()) -> Sample:
        """Apply each active parameter's value (``value_of(param)``) to a copy of ``base``; paths in ``drop``
        count as inactive."""
        from deconstruct.spec import set_path

        data = copy.deepcopy(base)
        params: dict[str, Any] = {}
        encoded: dict[str, Any] = {}
        inactive: list[str] = []
        for p in self.params:
            if p.path in drop or not self.active(data, p):
                inactive.append(p.path)
                continue
            value = value_of(p)
            encoded[p.path] = value
            params[p.path] = p.decode(value)
            set_path(data, list(p.keys), copy.deepcopy(params[p.path]))
        def by_spec(d: dict[str, Any]) -> dict[str, Any]:
            return dict(sorted(d.items(), key=lambda kv: self.order[kv[0]]))

        inactive.sort(key=self.order.__getitem__)
        return Sample(data=data, params=by_spec(params), encoded=by_spec(encoded), inactive=inactive)

    def resolve(self, base: dict[str, Any], sample: Sample, load: Any) -> tuple[Any, Sample]:
        """``load(sample.data)``; when that fails because a searched mixer option does not apply to the rest
        of the sampled mixer (``normalization: separate`` with ``form: softmax``), drop that option (it keeps
        its default), record it as inactive and load again.

        An option is dropped only if its value is valid for *some* choice of the other searched keys of the
        same mixer (kind, form, …): a value that is valid nowhere (``kv_heads: 3`` with 2 heads) is an error
        of the space, and the trial fails with the validator's sentence.
        """
        try:
            return load(sample.data), sample
        except SpecError as error:
            first = error
        candidates = [p for p in self.params if p.conditional is not None and p.path in sample.encoded
                      and self._applies_somewhere(base, p, sample.encoded[p.path], load)]
        for drop in [frozenset([p.path]) for p in reversed(candidates)] + [frozenset(p.path for p in candidates)]:
            if not drop:
                continue
            retry = self.apply(base, lambda q: sample.encoded[q.path], drop=drop)
            try:
                return load(retry.data), retry
            except SpecError:
                continue
        raise first

    def _applies_somewhere(self, base: dict[str, Any], p: Param, value: Any, load: Any) -> bool:
        key = (p.path, json.dumps(value, sort_keys=True, default=str))
        cache = self.__dict__.setdefault("_somewhere", {})
        if key not in cache:
            node = p.conditional[0] if p.conditional else []
            siblings = [q for q in self.params if q is not p and q.grid() is not None and (
                q.keys == [*node, "kind"] or (q.conditional is not None and q.conditional[0] == node))]
            found = False
            for combo in itertools.islice(itertools.product(*(q.grid() or [] for q in siblings)), 64):
                values = {q.path: v for q, v in zip(siblings, combo, strict=True)} | {p.path: value}
                only = frozenset(q.path for q in self.params if q.path not in values)
                probe = self.apply(base, lambda q, _v=values: _v[q.path], drop=only)
                if p.path not in probe.encoded:
                    continue
                try:
                    load(probe.data)
                except SpecError:
                    continue
                found = True
                break
            cache[key] = found
        return cache[key]

    def active(self, data: dict[str, Any], p: Param) -> bool:
        """Does the mixer at ``p``'s node (as configured so far in ``data``) take ``p``'s option?"""
        if p.conditional is None:
            return True
        node_keys, option, kind = p.conditional
        node = _get(data, node_keys)
        if isinstance(node, str):
            name = node
        elif isinstance(node, dict):
            name = node.get("kind", "mlp" if kind == "channel_mixer" else "attention")
        elif node is None:
            name = "mlp" if kind == "channel_mixer" else "attention"
        else:
            return True  # not a mixer: let validation say what is wrong
        try:
            if kind == "channel_mixer":
                entry, fixed = self.registry.get("channel_mixer", name), {}
            else:
                entry, fixed = self.registry.resolve_mixer(name)
        except (PluginError, TypeError):
            return True  # an unknown kind: load_spec reports it with its path
        fields = entry.options.model_fields if entry.options is not None else {}
        return option in fields and option not in fixed
