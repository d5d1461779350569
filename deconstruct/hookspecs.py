"""The plugin contract: pluggy hook specifications for project ``deconstruct``.

A plugin is a module (or object) with functions marked ``@deconstruct.hookimpl``. Third-party plugins are
found through the ``deconstruct`` entry-point group; the built-in variants are registered through exactly
the same hooks from the modules in ``deconstruct.plugins.DEFAULT_PLUGINS``.

Each ``register_*`` hook receives a ``register`` callback (as in llm):

    @hookimpl
    def register_mixers(register):
        register("ema", build=build_ema, options=EMAOptions, summary="causal moving average", paper="…")

Keep the module that holds the hooks free of a top-level ``import torch``: the CLI loads every plugin at
start-up, and ``deconstruct --help`` must stay fast. Import the ``nn.Module`` inside ``build``.
"""

from __future__ import annotations

from typing import Any

import pluggy

PROJECT = "deconstruct"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_mixers(register: Any) -> None:
    """Register token mixers (and presets over them).

    ``register(name, *, build, options=None, summary="", paper="", patterns=("causal_self",))`` adds a mixer:
    ``build(ctx: MixerContext, options) -> torch.nn.Module`` whose ``forward(x, qk=None)`` maps (B, T, d) to
    (B, T, d). ``options`` is a pydantic model class of the mixer's typed options.

    ``register(name, *, preset={"kind": base, **fixed_options}, summary="", paper="")`` adds a named
    preset over an already registered mixer.
    """


@hookspec
def register_channel_mixers(register: Any) -> None:
    """Register channel mixers: ``register(name, *, build, options=None, summary="", paper="")`` with
    ``build(ctx: MixerContext, options) -> nn.Module | None`` (None: the block has no channel mixer)."""


@hookspec
def register_tasks(register: Any) -> None:
    """Register tasks: ``register(name, *, build, options, summary="")`` with ``build(options) -> Task``."""


@hookspec
def register_commands(app: Any) -> None:
    """Add sub-commands to the ``deconstruct`` typer application."""
