"""The plugin contract: pluggy hook specifications for project ``deconstruct``.

A plugin is a module (or object) with functions marked ``@deconstruct.hookimpl``. Third-party plugins are
found through the ``deconstruct`` entry-point group::

    # pyproject.toml of the plugin
    [project.entry-points.deconstruct]
    ema = "deconstruct_ema"          # plugin name = "module" (or "module:object") holding the hooks

The built-in variants are registered through exactly the same hooks from the modules in
``deconstruct.plugins.DEFAULT_PLUGINS``. Each ``register_*`` hook receives a ``register`` callback (as in
llm)::

    @hookimpl
    def register_mixers(register):
        register("ema", build="deconstruct_ema._ema:EMA", options=EMAOptions, summary="causal moving average")

Keep the module that holds the hooks free of a top-level ``import torch``: the CLI loads every plugin at
start-up, and ``deconstruct --help`` must stay fast. ``build="package.module:Class"`` names the
``nn.Module`` without importing it (it is imported when a model is built); a callable ``build`` works too.

A mixer module built by ``build(ctx, options)`` (``ctx`` a :class:`deconstruct.spec.MixerContext`) must
provide ``forward(x, qk=None)`` mapping (B, T, d) to (B, T, d) — ``qk`` is an alternative source of queries
and keys (see ``qk_source``) and may be ignored. Optional attributes the model honours:

- ``qk_source``: ``"hidden"`` (default) | ``"static"`` | ``"random"`` | ``"fixed_text"``;
- ``flops_per_token(seq_len) -> int``: analytic forward FLOPs (default: 2 × parameters);
- ``init_weights()``: called after the model's own initialisation (frozen maps, special parameters);
- ``aux_loss``: a tensor set during ``forward`` and added to the training loss;
- ``random_std``, ``detach_stream``: settings of the fixed ``random`` / ``fixed_text`` streams.

``deconstruct.testing.MixerConformance`` checks a mixer against this contract.
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

    ``register(name, *, build, options=None, summary="", paper="", patterns=("causal_self",), mixes_tokens=True)``
    adds a mixer: ``build`` is ``"package.module:Class"`` (imported on first use) or a callable, called as
    ``build(ctx: MixerContext, options) -> torch.nn.Module`` whose ``forward(x, qk=None)`` maps (B, T, d) to
    (B, T, d). ``mixes_tokens=False`` declares a token-wise mixer (each position on its own, like ``mlp``):
    the report treats it as "no token mixing". ``options`` is a pydantic model class of the mixer's typed options (use
    ``extra="forbid"`` so a misspelt option is an error; an optional ``check(ctx)`` method may raise
    ``ValueError`` with a sentence for an incompatible combination). ``patterns`` lists which of
    causal_self, noncausal_self, causal_cross, noncausal_cross the mixer supports (CAB, Zhang et al. 2023).

    ``register(name, *, preset={"kind": base, **fixed_options}, summary="", paper="")`` adds a named
    preset over an already registered mixer.
    """


@hookspec
def register_channel_mixers(register: Any) -> None:
    """Register channel mixers: ``register(name, *, build, options=None, summary="", paper="")`` with ``build``
    (an import string or a callable) called as ``build(ctx: MixerContext, options) -> nn.Module | None``
    (None: the block has no channel mixer)."""


@hookspec
def register_tasks(register: Any) -> None:
    """Register tasks: ``register(name, *, build, options, summary="")`` with ``build(options) -> Task`` (``build``
    an import string such as ``"deconstruct.tasks._lm:ByteLM"``, or a callable)
    (see :mod:`deconstruct.tasks`; ``options`` subclasses ``deconstruct.tasks.TaskOptions``)."""


@hookspec
def register_commands(app: Any) -> None:
    """Add sub-commands to the ``deconstruct`` typer application (``app.add_typer(...)`` or
    ``app.command(...)``). Import heavy modules inside the command function, not at the top."""
