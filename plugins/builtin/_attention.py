"""nn.Module of the ``attention`` mixer (see ``attention.py`` for the options and the paper)."""

from __future__ import annotations

import torch
from torch import nn

from deconstruct.model import MixerContext, Rotary, attend


class Attention(nn.Module):
    """Multi-head attention: Q, K, V = x·W_{Q,K,V}; A = softmax(QKᵀ/√d_h + mask); out = A·V·W_O."""

    def __init__(self, ctx: MixerContext, options):
        super().__init__()
        d, H = ctx.d_model, ctx.heads
        self.H, self.D = H, ctx.head_dim
        self.Hkv = options.kv_heads or H
        self.causal, self.backend = ctx.causal, ctx.backend
        # one fused projection for q, k and v: (d) → (H + 2·H_kv)·D
        self.qkv = nn.Linear(d, (self.H + 2 * self.Hkv) * self.D, bias=ctx.bias)
        self.out_proj = nn.Linear(self.H * self.D, d, bias=ctx.bias)
        self.rotary = Rotary(self.D, ctx.max_seq_len) if ctx.positions == "rope" else None

    def forward(self, x: torch.Tensor, qk: torch.Tensor | None = None) -> torch.Tensor:
        B, T, _ = x.shape
        q, k, v = self.qkv(x).split([self.H * self.D, self.Hkv * self.D, self.Hkv * self.D], dim=-1)
        q = q.view(B, T, self.H, self.D).transpose(1, 2)  # (B, H, T, D)
        k = k.view(B, T, self.Hkv, self.D).transpose(1, 2)  # (B, H_kv, T, D)
        v = v.view(B, T, self.Hkv, self.D).transpose(1, 2)  # (B, H_kv, T, D)
        if self.rotary is not None:
            q, k = self.rotary(q), self.rotary(k)
        y = attend(q, k, v, causal=self.causal, backend=self.backend)  # (B, H, T, D)
        return self.out_proj(y.transpose(1, 2).reshape(B, T, self.H * self.D))

    def flops_per_token(self, seq_len: int) -> int:
        params = sum(p.numel() for p in self.parameters())
        span = (seq_len + 1) / 2 if self.causal else seq_len  # mean number of keys a query sees
        return int(2 * params + 4 * span * self.H * self.D)  # projections + QKᵀ + A·V
