"""deconstruct — take attention apart, one design principle at a time.

The public API is curated here (Optuna style). Importing `deconstruct` is cheap: torch, optuna and the
model code load on first use of the names that need them, so `deconstruct --help` stays fast.
"""

from __future__ import annotations

from typing import Any

from deconstruct._errors import DeconstructError, PluginError, SpecError
from deconstruct.hookspecs import hookimpl

__version__ = "0.1.0"

# name -> "module:attribute", imported on first access (PEP 562)
_LAZY = {
    "Spec": "deconstruct.spec:Spec",
    "load_spec": "deconstruct.spec:load_spec",
    "build_model": "deconstruct.model:build_model",
    "Transformer": "deconstruct.model:Transformer",
    "MixerContext": "deconstruct.model:MixerContext",
    "train": "deconstruct.train:train",
    "TrainResult": "deconstruct.train:TrainResult",
    "get_registry": "deconstruct.plugins:get_registry",
}

__all__ = ["DeconstructError", "PluginError", "SpecError", "hookimpl", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name].split(":")
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'deconstruct' has no attribute {name!r}")
