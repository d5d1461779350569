"""The spec of a study: the data every trial starts from, and what makes two specs the same study."""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

from deconstruct.study._events import StudyError


def read_spec(path: str, overrides: list[str] | tuple[str, ...] = ()) -> tuple[dict[str, Any], str]:
    """The raw spec data of a file after ``--set`` overrides (validated, with line-numbered errors), and its
    text. This data, not the file, is what the study stores and every trial starts from."""
    from deconstruct.study._check import check_search

    checked = check_search(path, overrides)  # the base configuration and every searched value, located
    return checked.data, checked.text


def spec_identity(spec: Any) -> dict[str, Any]:
    """What makes a study the same study: everything but the study's name, sampler, pruner, budget and
    checkpointing (turning checkpoints on for a running study changes no result)."""
    d = spec.model_dump(mode="json", exclude_defaults=True, include={"task", "model", "train", "search"},
                        exclude={"train": {"checkpoint_every"}})
    if spec.study.match.params != "none":  # matched and unmatched are different studies (different models)
        d["match"] = spec.study.match.model_dump(mode="json")
    d["objectives"] = spec.study.objectives
    d["directions"] = spec.study.directions
    return d


def spec_hash(identity: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict) and d:
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): d}


def describe_change(old: dict[str, Any], new: dict[str, Any], limit: int = 3) -> str:
    """``search.model.layout: ['uniform', 'hybrid'] -> ['uniform']; …`` (the first few differences)."""
    a, b = _flatten(old), _flatten(new)
    parts = []
    for key in sorted(set(a) | set(b)):
        if a.get(key, "∅") != b.get(key, "∅"):
            before = json.dumps(a[key]) if key in a else "(absent)"
            after = json.dumps(b[key]) if key in b else "(absent)"
            parts.append(f"{key}: {before} -> {after}")
    more = f"; and {len(parts) - limit} more" if len(parts) > limit else ""
    return "; ".join(parts[:limit]) + more



def check_same_study(existing: Any, identity: dict[str, Any], where: str) -> None:
    """Refuse a spec whose ``identity`` is not that of the ``existing`` study (a StudyInfo) of its name:
    a StudyError naming the first differences and what to do instead."""
    if existing.spec_hash == spec_hash(identity):
        return
    try:
        from deconstruct.spec import Spec
        from deconstruct.study._space import normalize

        before = spec_identity(Spec.model_validate(normalize(copy.deepcopy(existing.spec))))
        what = describe_change(before, identity)
    except Exception:
        what = "its spec hash differs"
    raise StudyError(
        f"study {existing.name!r} in {where} was created from a different spec ({what}); "
        f"give this one a new name (name: … in the spec, or --set name=NEW) "
        f"or delete the old study with `deconstruct study delete {existing.name}`"
    )
