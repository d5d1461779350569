"""Named presets over the attention axes (filled in by the variants work)."""

from __future__ import annotations

from typing import Any

from deconstruct.hookspecs import hookimpl


@hookimpl
def register_mixers(register: Any) -> None:
    register("standard", preset={"kind": "attention"}, summary="alias of attention with its defaults")
