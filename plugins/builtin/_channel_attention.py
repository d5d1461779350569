"""nn.Module of the ``channel_attention`` mixer (see ``channel_attention.py``; Ding et al. 2022, DaViT,
arXiv 2204.03645).

Same parameters as the built-in :class:`Attention` with default options — one fused ``qkv`` Linear
(rows [W_Q | W_K | W_V]) and ``out_proj`` W_O, 4d² without bias — so the Transformer initialises them the
same way (``out_proj`` gets the residual scaling).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from deconstruct.model import MixerContext


class ChannelAttention(nn.Module):
    """Channel group attention: per head group g, A_g = softmax(Q_gᵀ K_g · s) over channels, out_g = V_g A_gᵀ."""

    qk_source = "hidden"

    def __init__(self, ctx: MixerContext, options):
        super().__init__()
        d, H = ctx.d_model, ctx.heads
        self.d, self.H, self.D = d, H, ctx.head_dim
        self.scale_mode = options.scale
        self.qkv = nn.Linear(d, 3 * d, bias=ctx.bias)
        self.out_proj = nn.Linear(d, d, bias=ctx.bias)

    def channel_scale(self, T: int) -> float:
        """s: 1/√C_g (DaViT) or 1/√T."""
        return 1.0 / math.sqrt(self.D if self.scale_mode == "group" else T)

    def forward(self, x: torch.Tensor, qk: torch.Tensor | None = None) -> torch.Tensor:
        # x: (B, T, d); queries/keys always come from x
        B, T, _ = x.shape
        q, k, v = self.qkv(x).split(self.d, dim=-1)  # (B, T, d) each
        q, k, v = (t.view(B, T, self.H, self.D).transpose(1, 2) for t in (q, k, v))  # (B, H, T, D)
        s = q.transpose(-1, -2) @ k  # (B, H, D, D): channel c of Q against channel c' of K, summed over T
        s = s.to(torch.promote_types(s.dtype, torch.float32))  # softmax in ≥ fp32 (bf16/fp16 under autocast)
        a = (s * self.channel_scale(T)).softmax(-1).to(v.dtype)  # (B, H, D, D), rows sum to 1
        y = v @ a.transpose(-1, -2)  # (B, H, T, D) = (A · Vᵀ)ᵀ
        y = y.transpose(1, 2).reshape(B, T, self.d)  # (B, T, d): groups concatenated
        return self.out_proj(y)

    def flops_per_token(self, seq_len: int) -> int:
        """2·params (projections) + 2·H·D² (Q_gᵀK_g) + 2·H·D² (V_g·A_gᵀ) per token; independent of T."""
        params = sum(p.numel() for p in self.parameters())
        return int(2 * params + 4 * self.H * self.D * self.D)
