"""nn.Module of the ``reversed`` mixer (see ``reversed.py``; Ding et al. 2023, arXiv 2304.03282).
Parameters: standard attention's 4·d² plus the head selector W_s (d·h) and message controller w_m (d):
4·d² + d·h + d (+ 4·d + h + 1 with bias)."""

from __future__ import annotations

import torch
from torch import nn

from deconstruct.model import MixerContext

from ._attention import Attention
from .attention import AttentionOptions


class ReversedAttention(Attention):
    """y = W_O·concat_h((s_h ⊙ m ⊙ A_h)ᵀ·V_h): children send along their attention rows."""

    def __init__(self, ctx: MixerContext, options):
        super().__init__(ctx, AttentionOptions())
        self.head_selector = nn.Linear(ctx.d_model, self.H, bias=ctx.bias)
        self.message_gate = nn.Linear(ctx.d_model, 1, bias=ctx.bias)

    def mixing(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, T, d) → (M (B, H, T_parent, T_child), v (B, H, T, D)): M[j, i] = s_ih·m_i·A_h[i, j]."""
        q, k, v = self._project(x, None)  # (B, H, T, D)
        A = ((q @ k.transpose(-1, -2)) * self.score_scale).softmax(-1)  # (B, H, T_child, T_parent)
        s = self.head_selector(x).softmax(-1).transpose(1, 2)  # (B, H, T): child i's weight on head h
        m = torch.sigmoid(self.message_gate(x)).squeeze(-1)  # (B, T): how much child i sends
        sent = A * (s * m[:, None, :]).unsqueeze(-1)  # (B, H, T_child, T_parent)
        return sent.transpose(-1, -2), v

    def forward(self, x: torch.Tensor, qk: torch.Tensor | None = None) -> torch.Tensor:
        M, v = self.mixing(x)
        return self._output(M @ v)

    @torch.no_grad()
    def attention_weights(self, x: torch.Tensor, qk: torch.Tensor | None = None) -> torch.Tensor:
        """(B, H, T, T): row j holds what parent j receives from each child (rows need not sum to one)."""
        return self.mixing(x)[0]

    def flops_per_token(self, seq_len: int) -> int:
        """2·params + 2·T·H·(D + D) (full non-causal scores and the transposed product)."""
        params = sum(p.numel() for p in self.parameters())
        return int(2 * params + 2 * seq_len * self.H * 2 * self.D)
