"""Load a spec file, apply ``--set`` overrides, validate, and resolve every layer's mixer."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from deconstruct._errors import PluginError, SpecError
from deconstruct.spec._layouts import PRESETS, standard_layers
from deconstruct.spec._plan import LayerPlan, ResolvedSpec
from deconstruct.spec._schema import MixerSpec, Spec
from deconstruct.spec._yaml import Lines, parse_scalar, read_yaml_file

Path_ = tuple[Any, ...]


class _Where:
    """Maps a spec path to where it came from: a YAML line, or a ``--set`` on the command line."""

    def __init__(self, file: str | None, lines: Lines, overridden: set[Path_]):
        self.file, self.lines, self.overridden = file, lines, overridden

    def error(self, message: str, path: Path_, hint: str | None = None) -> SpecError:
        dotted = ".".join(str(p) for p in path)
        for i in range(len(path), -1, -1):
            if path[:i] in self.overridden:
                return SpecError(message, path=dotted, file="--set", hint=hint)
        line = None
        for i in range(len(path), -1, -1):
            if path[:i] in self.lines:
                line = self.lines[path[:i]]
                break
        return SpecError(message, path=dotted or None, file=self.file, line=line, hint=hint)


def apply_override(data: dict[str, Any], assignment: str) -> Path_:
    """Apply ``a.b.c=VALUE`` (VALUE parsed as YAML) to nested data in place; return the path."""
    if "=" not in assignment:
        raise SpecError(f"--set expects PATH=VALUE, got {assignment!r}", hint="e.g. --set model.layers=2")
    dotted, raw = assignment.split("=", 1)
    keys: list[Any] = [int(k) if k.lstrip("-").isdigit() else k for k in dotted.strip().split(".")]
    if not keys or any(k == "" for k in keys):
        raise SpecError(f"--set has an empty path in {assignment!r}", hint="e.g. --set model.layers=2")
    try:
        value = parse_scalar(raw.strip())
    except SpecError as exc:
        raise SpecError(exc.message, file="--set", path=dotted.strip()) from None
    try:
        set_path(data, keys, value)
    except SpecError as exc:
        raise SpecError(exc.message, file="--set", path=exc.path, hint=exc.hint) from None
    return tuple(keys)


def set_path(data: Any, keys: list[Any], value: Any) -> None:
    """Set ``value`` at a dotted path, creating mappings on the way (lists are indexed, 0-based)."""
    node = data
    for i, key in enumerate(keys[:-1]):
        nxt = keys[i + 1]
        if isinstance(node, list):
            if not isinstance(key, int) or not -len(node) <= key < len(node):
                raise SpecError(f"index {key!r} is out of range (a list of {len(node)}, indexed from 0)",
                                path=".".join(map(str, keys[: i + 1])))
            node = node[key]
            continue
        if not isinstance(node, dict):
            raise SpecError("cannot set a key inside a scalar", path=".".join(map(str, keys[: i + 1])))
        if key not in node or node[key] is None:
            node[key] = {}
        elif isinstance(node[key], str) and not isinstance(nxt, int):
            # `mixer: mlp` then `--set model.mixer.window=4`: expand the shorthand to {kind: mlp}
            node[key] = {"kind" if keys[i] != "task" else "name": node[key]}
        node = node[key]
    last = keys[-1]
    if isinstance(node, list) and isinstance(last, int):
        if not -len(node) <= last < len(node):
            raise SpecError(f"index {last} is out of range (a list of {len(node)}, indexed from 0)",
                            path=".".join(map(str, keys)),
                            hint=f"to replace the whole list: --set {'.'.join(map(str, keys[:-1]))}=[…]")
        node[last] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise SpecError("cannot set a key inside a scalar", path=".".join(map(str, keys)))


def _fields_of(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Valid keys of the (sub)model at ``loc`` (for 'did you mean' hints)."""
    current: Any = model
    for part in loc:
        field = getattr(current, "model_fields", {}).get(part)
        if field is None:
            return []
        ann = field.annotation
        current = next(
            (c for c in (ann, *getattr(ann, "__args__", ())) if isinstance(c, type) and issubclass(c, BaseModel)),
            None,
        )
        if current is None:
            return []
    return list(getattr(current, "model_fields", {}))


def _pydantic_error(exc: ValidationError, where: _Where, root: type[BaseModel], prefix: Path_ = ()) -> SpecError:
    errors = exc.errors()
    err = errors[0]
    if err["type"] == "list_type" and len(errors) > 1 and err["loc"][:1] == ("search",):
        # a search entry is a list or a range: report the branch that matches what was written
        if isinstance(err.get("input"), dict):
            err = errors[1]
        else:
            where_ = tuple(p for p in err["loc"] if not (isinstance(p, str) and "[" in p))
            return where.error(f"a search entry is a list of values or a range {{low, high, log, step}} "
                               f"(got {err.get('input')!r})", prefix + where_)
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and ("[" in p or p in ("list[any]", "str"))))
    kind, msg = err["type"], err["msg"]
    if kind == "extra_forbidden":
        key = loc[-1]
        valid = _fields_of(root, loc[:-1])
        close = difflib.get_close_matches(str(key), valid, n=1)
        hint = (f"did you mean {close[0]!r}? " if close else "") + ("valid keys: " + ", ".join(valid) if valid else "")
        return where.error(f"unknown key {key!r}", prefix + loc, hint=hint or None)
    if kind == "missing":
        return where.error("required key is missing", prefix + loc)
    value = err.get("input")
    shown = repr(value) if not isinstance(value, (dict, list)) else type(value).__name__
    shown = shown if len(shown) <= 60 else shown[:45] + "…" + shown[-10:]
    msg = msg[0].lower() + msg[1:] if msg else msg
    msg = msg.removeprefix("value error, ")
    return where.error(f"{msg} (got {shown})", prefix + loc)


def _check_options(
    options_model: type[BaseModel] | None,
    values: dict[str, Any],
    where: _Where,
    path: Path_,
) -> BaseModel:
    from pydantic import ConfigDict, create_model

    model = options_model or create_model("NoOptions", __config__=ConfigDict(extra="forbid"))
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise _pydantic_error(exc, where, model, path) from None


def _resolve_mixer(
    ms: MixerSpec, where: _Where, path: Path_, registry: Any
) -> tuple[str, str, BaseModel, tuple[Any, ...]]:
    """(the spec's name, the buildable base, validated options, the entries from the name down to the base)."""
    from deconstruct.plugins import preset_options

    try:
        chain = tuple(registry.chain(ms.kind))
    except PluginError as exc:
        raise where.error(str(exc), path + ("kind",)) from None
    entry, fixed = chain[-1], preset_options(chain)
    user = ms.options
    for key, value in user.items():
        if key in fixed and fixed[key] != value:
            raise where.error(
                f"preset {ms.kind!r} fixes {key}={fixed[key]!r}; to choose {key} yourself use kind: {entry.name}",
                path + (key,),
            )
    opts = _check_options(entry.options, {**fixed, **user}, where, path)
    return ms.kind, entry.name, opts, chain


def resolve(spec: Spec, *, where: _Where | None = None, registry: Any = None, source: str = "", overrides: tuple[str, ...] = ()) -> ResolvedSpec:
    """Resolve layouts, presets and options of a validated :class:`Spec` into per-layer plans."""
    if registry is None:
        from deconstruct.plugins import get_registry

        registry = get_registry()
    where = where or _Where(None, {}, set())
    m = spec.model

    # task
    try:
        task_entry = registry.get("task", spec.task.name)
    except PluginError as exc:
        raise where.error(str(exc), ("task", "name")) from None
    task_opts = _check_options(task_entry.options, spec.task.options, where, ("task",))
    causal = bool(getattr(task_opts, "causal", True))

    if m.d_model % m.heads:
        raise where.error(
            f"d_model ({m.d_model}) must be divisible by heads ({m.heads})",
            ("model", "heads"),
            hint="valid heads: " + ", ".join(str(h) for h in range(1, m.d_model + 1) if m.d_model % h == 0 and h <= 64),
        )

    # layout -> the mixer spec of each layer
    n = m.layers
    if isinstance(m.layout, list):
        if len(m.layout) != n:
            raise where.error(f"an explicit layout needs one mixer per layer: {len(m.layout)} given, model.layers is {n}", ("model", "layout"))
        chosen: list[tuple[MixerSpec, Path_]] = [(m.layout[i], ("model", "layout", i)) for i in range(n)]
        std: set[int] = set()
    else:
        if m.layout not in PRESETS:
            close = difflib.get_close_matches(m.layout, list(PRESETS), n=1)
            hint = (f"did you mean {close[0]!r}? " if close else "") + "valid: " + ", ".join(PRESETS) + ", or a list of mixers"
            raise where.error(f"unknown layout {m.layout!r}", ("model", "layout"), hint=hint)
        std = standard_layers(m.layout, n)
        chosen = []
    if m.standard_layers is not None:
        bad = [i for i in m.standard_layers if not 1 <= i <= n]
        if bad:
            raise where.error(f"layer {bad[0]} does not exist (layers are numbered 1 … {n})", ("model", "standard_layers"))
        std = set(m.standard_layers)
    if not chosen:
        chosen = [
            ((m.standard, ("model", "standard")) if i in std else (m.mixer, ("model", "mixer"))) for i in range(1, n + 1)
        ]
    for idx, ms in m.overrides.items():
        if not 1 <= idx <= n:
            raise where.error(f"layer {idx} does not exist (layers are numbered 1 … {n})", ("model", "overrides", idx))
        chosen[idx - 1] = (ms, ("model", "overrides", idx))

    standard_name, standard_base, standard_opts, _ = _resolve_mixer(m.standard, where, ("model", "standard"), registry)
    try:
        ch_entry = registry.get("channel_mixer", m.channel_mixer.kind)
    except PluginError as exc:
        raise where.error(str(exc), ("model", "channel_mixer")) from None
    ch_opts = _check_options(ch_entry.options, m.channel_mixer.options, where, ("model", "channel_mixer"))

    plans = []
    cache: dict[Path_, tuple[str, str, BaseModel, tuple[Any, ...]]] = {}
    for i, (ms, path) in enumerate(chosen, start=1):
        if path not in cache:
            cache[path] = _resolve_mixer(ms, where, path, registry)
        name, base, opts, chain = cache[path]
        entry = chain[-1]
        need = "causal_self" if causal else "noncausal_self"
        if need not in entry.patterns:
            raise where.error(
                f"mixer {name!r} supports {', '.join(entry.patterns)} but task {spec.task.name!r} needs {need}",
                path + ("kind",),
            )
        plans.append(
            LayerPlan(
                index=i,
                mixer=name,
                base=base,
                options=opts,
                standard=(base == standard_base and opts == standard_opts),
                channel_mixer=ch_entry.name,
                channel_options=ch_opts,
                mixer_entries=chain,
                channel_entry=ch_entry,
            )
        )
    resolved = ResolvedSpec(
        spec=spec, layers=tuple(plans), task_options=task_opts, source=source, overrides=overrides, task_entry=task_entry
    )

    # mixer-specific compatibility checks (a sentence, never an assert deep in the model)
    for plan in plans:
        check = getattr(plan.options, "check", None)
        if check is not None:
            try:
                check(resolved.context(plan))
            except ValueError as exc:
                raise where.error(str(exc), chosen[plan.index - 1][1]) from None
    _check_search(spec, where)
    return resolved


def _check_search(spec: Spec, where: _Where) -> None:
    for dotted in spec.search:
        top = dotted.split(".", 1)[0]
        if top not in ("task", "model", "train"):
            raise where.error(
                f"search path {dotted!r} must start with task., model. or train.", ("search", dotted)
            )


def load_spec(
    source: str | Path | dict[str, Any],
    overrides: list[str] | tuple[str, ...] = (),
    *,
    registry: Any = None,
) -> ResolvedSpec:
    """Read, override, validate and resolve a spec. Raises :class:`SpecError` with file, path and line."""
    lines: Lines
    if isinstance(source, dict):
        import copy

        data, lines, text, file = copy.deepcopy(source), {}, "", None
    else:
        data, lines, text = read_yaml_file(source)
        file = str(source)
    if not isinstance(data, dict):
        raise SpecError("a spec must be a mapping with keys name, task, model, train, search, study", file=file, line=1)
    overridden = {apply_override(data, a) for a in overrides}
    where = _Where(file, lines, overridden)
    if "name" not in data and file:
        data["name"] = Path(file).stem
    try:
        spec = Spec.model_validate(data)
    except ValidationError as exc:
        raise _pydantic_error(exc, where, Spec) from None
    return resolve(spec, where=where, registry=registry, source=text, overrides=tuple(overrides))
