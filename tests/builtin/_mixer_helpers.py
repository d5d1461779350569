"""Helpers shared by the built-in mixer tests: a small ``MixerContext``, a seeded float64 mixer built from
its options class, and a seeded float64 input. Each test module binds its own defaults (``functools.partial``
or a one-line wrapper) where they differ. Imported as ``_mixer_helpers``: tests/builtin/conftest.py puts this
folder on ``sys.path`` (the suite runs with ``--import-mode=importlib``, which does not)."""

from __future__ import annotations

from typing import Any

import torch

from deconstruct.spec import MixerContext


def make_ctx(*, d: int = 16, heads: int = 4, T: int = 12, causal: bool = True, positions: str = "learned",
             bias: bool = False, layer_index: int = 0, n_layers: int = 2) -> MixerContext:
    """A one-layer context on the sdpa backend (d_model d, ``heads`` heads, max_seq_len T)."""
    return MixerContext(d_model=d, heads=heads, layer_index=layer_index, n_layers=n_layers, max_seq_len=T,
                        causal=causal, positions=positions, backend="sdpa", bias=bias)


def build_mixer(module_cls: type, options_cls: type, options: dict | None, ctx: MixerContext, seed: int = 0,
                dtype: torch.dtype = torch.float64, check: bool = True) -> Any:
    """``module_cls(ctx, options_cls(**options))`` with weights drawn after ``torch.manual_seed(seed)``, cast to
    ``dtype``; the options are validated against ``ctx`` first (``check=False`` for options classes without
    a ``check``)."""
    opts = options_cls(**(options or {}))
    if check:
        opts.check(ctx)
    torch.manual_seed(seed)
    return module_cls(ctx, opts).to(dtype)


def seeded_input(B: int, T: int, d: int, seed: int = 1) -> torch.Tensor:
    """x (B, T, d), float64, drawn from its own generator (the global RNG is left alone)."""
    return torch.randn(B, T, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
