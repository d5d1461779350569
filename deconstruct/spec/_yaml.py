"""YAML loading that remembers the line of every key, so errors can say where they are.

A spec is small, so the loader refuses what only a mistake or an attack produces, each with one line:
nesting deeper than :data:`MAX_DEPTH`, aliases that expand to more than :data:`MAX_VALUES` values (the
"billion laughs") or that refer to themselves, tags outside plain YAML (``!!python/name``), a collection as
a mapping key, a duplicate key, and non-finite numbers (``.inf``, ``.nan``: no setting takes them).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

from deconstruct._errors import SpecError

Lines = dict[tuple[Any, ...], int]

MAX_DEPTH = 64  #: nested mappings/lists (a spec needs about 5)
MAX_VALUES = 100_000  #: values after alias expansion (a large spec has a few hundred)
_MERGE = "tag:yaml.org,2002:merge"


class _Loader(yaml.SafeLoader):
    pass


class _Builder:
    """Turns a composed YAML node graph into plain data, bounded in depth and size, recording lines."""

    def __init__(self, loader: _Loader, file: str | None):
        self.loader, self.file, self.count = loader, file, 0
        self.lines: Lines = {}
        self.active: set[int] = set()  # ids of the collection nodes being built (a revisit is a cycle)

    def error(self, message: str, node: yaml.Node, path: tuple[Any, ...] = ()) -> SpecError:
        return SpecError(message, file=self.file, line=node.start_mark.line + 1,
                         path=".".join(map(str, path)) or None)

    def build(self, node: yaml.Node, path: tuple[Any, ...]) -> Any:
        self.count += 1
        if self.count > MAX_VALUES:
            raise self.error(f"the YAML expands to more than {MAX_VALUES:,} values (nested aliases?); a spec is "
                             f"far smaller", node)
        if len(path) > MAX_DEPTH:
            raise self.error(f"the YAML nests deeper than {MAX_DEPTH} levels", node, path[:3])
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node, path)
        if id(node) in self.active:
            raise self.error("a YAML alias refers to itself (recursive anchor)", node, path)
        self.active.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return [self.build(child, path + (i,)) for i, child in enumerate(node.value)]
            return self.mapping(node, path)
        finally:
            self.active.discard(id(node))

    def mapping(self, node: yaml.Node, path: tuple[Any, ...]) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        merged: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:  # `<<: *base` — explicit keys win over merged ones
                sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
                for source in sources:
                    value = self.build(source, path)
                    if not isinstance(value, dict):
                        raise self.error("a merge key (<<) needs a mapping or a list of mappings", value_node, path)
                    merged = {**value, **merged}
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                raise self.error("a mapping key must be a plain value, not a list or mapping", key_node, path)
            key = self.scalar(key_node, path)
            if key in out:
                raise self.error(f"duplicate key {key!r} (first on line {self.lines.get(path + (key,), '?')})",
                                 key_node, path + (key,))
            self.lines[path + (key,)] = key_node.start_mark.line + 1
            out[key] = self.build(value_node, path + (key,))
            self.lines[path + (key,)] = key_node.start_mark.line + 1
        return {**merged, **out}

    def scalar(self, node: yaml.Node, path: tuple[Any, ...]) -> Any:
        try:
            value = self.loader.construct_object(node, deep=True)
        except yaml.MarkedYAMLError as exc:  # an unknown tag such as !!python/name
            raise self.error(f"invalid YAML: {exc.problem or exc}", node, path) from None
        except (ValueError, TypeError) as exc:  # `!!int abc`, `!!float x`, …
            raise self.error(f"cannot read {node.value!r} as {node.tag.rsplit(':', 1)[-1]}: {exc}", node, path) from None
        if isinstance(value, float) and not math.isfinite(value):
            raise self.error(f"{node.value!r} is not a finite number; no setting takes infinity or NaN", node, path)
        return value


def _check_depth(text: str, file: str | None) -> None:
    """Refuse deep nesting before composing: PyYAML's composer recurses once per level."""
    depth = 0
    try:
        for event in yaml.parse(text, Loader=_Loader):
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > MAX_DEPTH:
                    raise SpecError(f"the YAML nests deeper than {MAX_DEPTH} levels", file=file,
                                    line=event.start_mark.line + 1)
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
    except yaml.YAMLError:
        return  # composing reports it, with its line


def load_yaml(text: str, file: str | None = None) -> tuple[Any, Lines]:
    """Parse YAML text into plain Python data plus {path tuple: 1-based line}."""
    _check_depth(text, file)
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark else None
        problem = exc.problem or str(exc)
        raise SpecError(f"invalid YAML: {problem}", file=file, line=line) from None
    except yaml.YAMLError as exc:
        raise SpecError(f"invalid YAML: {' '.join(str(exc).split())}", file=file) from None
    finally:
        loader.dispose()
    if node is None:
        return {}, {}
    builder = _Builder(loader, file)
    try:
        return builder.build(node, ()), builder.lines
    except RecursionError:  # aliases nesting collections beyond what the depth bound caught
        raise SpecError(f"the YAML nests deeper than {MAX_DEPTH} levels", file=file) from None


def read_yaml_file(path: str | Path) -> tuple[Any, Lines, str]:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError("no such file", file=str(path), hint="give the path of a spec YAML file") from None
    except IsADirectoryError:
        raise SpecError("is a directory", file=str(path), hint="give the path of a spec YAML file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read file: {exc.__class__.__name__}: {exc}", file=str(path)) from None
    data, lines = load_yaml(text, file=str(path))
    if data is None or data == {} and not lines:
        raise SpecError("the spec is empty (nothing but blanks or comments): a truncated write, or the wrong file?",
                        file=str(path), hint="a spec needs at least a name or one section; see studies/quickstart.yaml")
    return data, lines, text


def parse_scalar(text: str) -> Any:
    """`--set` values are YAML scalars (or flow collections): 4 → int, 3e-3 → float, [a, b] → list."""
    if not text.strip():
        return None
    try:
        data, _ = load_yaml(text)
    except SpecError as exc:
        if exc.message.startswith("invalid YAML"):
            return text
        raise
    return data
