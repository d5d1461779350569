"""Built-in tasks. ``lm``: byte-level language modelling over real text (the Python standard library's
own source by default) — reports bits per byte = loss / ln 2."""

from __future__ import annotations

from typing import Any

from deconstruct.hookspecs import hookimpl
from deconstruct.tasks._lm import LMOptions


def build_lm(options: LMOptions) -> Any:
    from deconstruct.tasks._lm import ByteLM

    return ByteLM(options)


@hookimpl
def register_tasks(register: Any) -> None:
    register("lm", build=build_lm, options=LMOptions, summary="byte-level language modelling (bits per byte)")
