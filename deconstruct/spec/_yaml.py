"""YAML loading that remembers the line of every key, so errors can say where they are."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from deconstruct._errors import SpecError

Lines = dict[tuple[Any, ...], int]


class _Loader(yaml.SafeLoader):
    pass


def _construct(node: yaml.Node, path: tuple[Any, ...], lines: Lines, loader: _Loader) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if key in out:
                raise SpecError(
                    f"duplicate key {key!r}", path=".".join(map(str, path + (key,))), line=key_node.start_mark.line + 1
                )
            lines[path + (key,)] = key_node.start_mark.line + 1
            out[key] = _construct(value_node, path + (key,), lines, loader)
            lines[path + (key,)] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(child, path + (i,), lines, loader) for i, child in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def load_yaml(text: str, file: str | None = None) -> tuple[Any, Lines]:
    """Parse YAML text into plain Python data plus {path tuple: 1-based line}."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark else None
        problem = exc.problem or str(exc)
        raise SpecError(f"invalid YAML: {problem}", file=file, line=line) from None
    except yaml.YAMLError as exc:
        raise SpecError(f"invalid YAML: {exc}", file=file) from None
    finally:
        loader.dispose()
    lines: Lines = {}
    if node is None:
        return {}, lines
    return _construct(node, (), lines, loader), lines


def read_yaml_file(path: str | Path) -> tuple[Any, Lines, str]:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError("no such file", file=str(path), hint="give the path of a spec YAML file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read file: {exc.__class__.__name__}: {exc}", file=str(path)) from None
    data, lines = load_yaml(text, file=str(path))
    return data, lines, text


def parse_scalar(text: str) -> Any:
    """`--set` values are YAML scalars (or flow collections): 4 → int, 3e-3 → float, [a, b] → list."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text
