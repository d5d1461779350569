"""Per-token feed-forward modules, used as channel mixers and (``GLU``) as the ``mlp`` token mixer."""

from __future__ import annotations

import torch
from torch import nn


class MLP(nn.Module):
    """x → W_down·GELU(W_up·x): the GPT-2 feed-forward block."""

    def __init__(self, d: int, hidden: int, bias: bool = False):
        super().__init__()
        self.up = nn.Linear(d, hidden, bias=bias)
        self.down = nn.Linear(hidden, d, bias=bias)

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

    def forward(self, x: torch.Tensor, qk: torch.Tensor | None = None) -> torch.Tensor:  # (B, T, d) → (B, T, d)
        return self.down(nn.functional.silu(self.gate(x)) * self.up(x))
