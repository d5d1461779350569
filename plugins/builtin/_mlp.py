"""Per-token feed-forward modules, used as channel mixers and (``GLU``) as the ``mlp`` token mixer.

The ``for_*`` class methods are what the hook modules register (``build="deconstruct.builtin._mlp:MLP.for_channel"``):
they turn a layer's context into the hidden width.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class MLP(nn.Module):
    """x → W_down·GELU(W_up·x): the GPT-2 feed-forward block."""

    def __init__(self, d: int, hidden: int, bias: bool = False):
        super().__init__()
        self.up = nn.Linear(d, hidden, bias=bias)
        self.down = nn.Linear(hidden, d, bias=bias)

    @classmethod
    def for_channel(cls, ctx: Any, options: Any) -> MLP:
        """The channel mixer ``mlp``: hidden width mlp_ratio·d."""
        return cls(ctx.d_model, int(ctx.mlp_ratio * ctx.d_model), bias=ctx.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, d) → (B, T, d)
        return self.down(nn.functional.gelu(self.up(x)))


class GLU(nn.Module):
    """x → W_down(SiLU(W_gate·x) ⊙ W_up·x) (SwiGLU). As a token mixer it ignores ``qk``: no mixing."""

    qk_source = "hidden"

    def __init__(self, d: int, hidden: int, bias: bool = False):
        super().__init__()
        self.gate = nn.Linear(d, hidden, bias=bias)
        self.up = nn.Linear(d, hidden, bias=bias)
        self.down = nn.Linear(hidden, d, bias=bias)

    @classmethod
    def for_channel(cls, ctx: Any, options: Any) -> GLU:
        """The channel mixer ``glu``: hidden width ⅔·mlp_ratio·d, so its parameters match the plain MLP's."""
        return cls(ctx.d_model, int(round(2 * ctx.mlp_ratio * ctx.d_model / 3)), bias=ctx.bias)

    @classmethod
    def for_mixer(cls, ctx: Any, options: Any) -> GLU:
        """The token mixer ``mlp``: width ``options.width``, default the parameters of the model's standard
        attention (``mlp_mixer.matched_width``: round(4d/3) for plain multi-head attention)."""
        from deconstruct.builtin.mlp_mixer import matched_width

        return cls(ctx.d_model, options.width or matched_width(ctx), bias=ctx.bias)

    def forward(self, x: torch.Tensor, qk: torch.Tensor | None = None) -> torch.Tensor:  # (B, T, d) → (B, T, d)
        return self.down(nn.functional.silu(self.gate(x)) * self.up(x))


def no_channel_mixer(ctx: Any, options: Any) -> None:
    """The channel mixer ``none``: the block has no feed-forward part."""
    return None
