"""The code behind a run: deconstruct's version and git commit, and a hash of each provider's source files.

A version number does not change when an editable plugin or a checkout of deconstruct is edited, so a run
also records ``source``: a short SHA-256 over the ``.py`` files of the top-level package that provides its
mixer, channel mixer or task (the whole ``deconstruct`` package for the built-ins: they share the model and
training code). Two runs of one configuration with different sources were made by different code; the study
runner does not reuse one for the other, and ``study show`` and the report say so.
"""

from __future__ import annotations

import hashlib
import importlib.util
import subprocess
from collections.abc import Mapping
from functools import cache, lru_cache
from pathlib import Path
from typing import Any


@cache
def source_hash(module: str) -> str:
    """16 hex digits over the ``.py`` files (path and content) of ``module``'s top-level package, or of the
    module itself when it is a single file; "" when it cannot be found."""
    top = module.split(":", 1)[0].split(".", 1)[0]
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return ""
    if spec is None:
        return ""
    digest = hashlib.sha256()
    if spec.submodule_search_locations:
        for root in sorted(spec.submodule_search_locations):
            base = Path(root)
            for path in sorted(base.rglob("*.py")):
                digest.update(str(path.relative_to(base)).encode() + b"\0" + path.read_bytes() + b"\0")
    elif spec.origin and Path(spec.origin).is_file():
        digest.update(Path(spec.origin).read_bytes())
    else:
        return ""
    return digest.hexdigest()[:16]


@lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The commit of the checkout deconstruct runs from (an editable install), else None."""
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip()
    return commit[:12] if out.returncode == 0 and commit else None


def code_versions() -> dict[str, str]:
    """deconstruct's version, its commit when run from a checkout, and the hash of its source files."""
    from deconstruct import __version__

    out = {"deconstruct": __version__, "deconstruct_source": source_hash("deconstruct")}
    commit = git_commit()
    if commit:
        out["deconstruct_commit"] = commit
    return out


def run_versions() -> dict[str, str]:
    """What every stored run records about the software that made it: Python, torch, Optuna, and
    :func:`code_versions` (deconstruct's version, commit and source hash); plugins are recorded apart."""
    import platform

    import optuna
    import torch

    return {"python": platform.python_version(), "torch": torch.__version__, "optuna": optuna.__version__,
            **code_versions()}


def code_key(versions: Mapping[str, Any], plugins: list[dict[str, Any]]) -> tuple[tuple[str, str, str], ...]:
    """What identifies the code of a run from its stored versions and plugins: each provider's name, version
    and source hash (deconstruct's own when a plugin has none recorded, as in runs stored before sources
    were)."""
    own = str(versions.get("deconstruct_source") or "")
    return tuple(sorted((str(p.get("name")), str(p.get("version")), str(p.get("source") or own)) for p in plugins))


def describe_deconstruct(versions: Mapping[str, Any]) -> str:
    """``0.1.0 @662dd88abc12 (source 1a2b3c4d)``: deconstruct's version, commit and source hash in a run."""
    text = str(versions.get("deconstruct", "?"))
    if versions.get("deconstruct_commit"):
        text += f" @{versions['deconstruct_commit']}"
    if versions.get("deconstruct_source"):
        text += f" (source {str(versions['deconstruct_source'])[:8]})"
    return text


def describe_plugins(plugins: list[dict[str, Any]]) -> str:
    """``attention 0.1.0 (source 1a2b3c4d), mlp 0.2 …``: each provider of a run, its version and source hash
    (built-in providers share deconstruct's source, so they show none of their own)."""
    parts = []
    for p in plugins:
        text = f"{str(p.get('name', '?')).removeprefix('deconstruct.builtin.')} {p.get('version', '?')}"
        if p.get("source"):
            text += f" (source {str(p['source'])[:8]})"
        parts.append(text)
    return ", ".join(sorted(parts)) or "none recorded"


def circumstances(device: str | None = None) -> str:
    """A short hash of what a failure may depend on besides the configuration: deconstruct's code, every
    loaded plugin (name, version, source) and the excluded ones, torch's version and the device. A trial
    that failed under other circumstances is worth retrying (the plugin is installed now, the bug fixed)."""
    import json

    import torch

    from deconstruct.plugins import get_registry

    reg = get_registry()
    plugins = sorted((name, info.version, source_hash(info.module) if not info.builtin else "")
                     for name, info in reg.plugins.items() if name not in reg.broken)
    data = {"code": code_versions(), "plugins": plugins, "excluded": sorted(reg.excluded), "torch": torch.__version__,
            "device": device or "auto"}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]
