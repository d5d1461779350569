"""nn.Module of the ``span_search`` mixer (see ``span_search.py``). Parameters: standard attention's 4·d²
(+ 4·d with bias) plus the router W_r, d_h² (shared by the heads)."""

from __future__ import annotations

import math

import torch
from torch import nn

from deconstruct.model import MixerContext

from ._blocks import own_and_gathered, to_blocks
from ._blockwise import BlockwiseAttention


class SpanSearchAttention(BlockwiseAttention):
    """Router over contiguous spans → attention inside the top-k spans → gated sum of the span outputs."""

    def __init__(self, ctx: MixerContext, options):
        super().__init__(ctx, options.span)
        self.top_k = options.top_k
        self.router = nn.Linear(self.D, self.D, bias=False)

    def mix(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """q, k (B, H, T, D), v (B, H, T, E) → (B, H, T, E). Linear in v."""
        B, H, T, D = q.shape
        S = self.S(T)
        kb = to_blocks(k, S)  # (B, H, R, S, D)
        R, dev = kb.shape[2], q.device
        pos = torch.arange(R * S, device=dev).view(R, S)
        size = (pos < T).sum(-1).to(q.dtype)  # (R,)
        k_bar = kb.sum(-2) / size[:, None]  # (B, H, R, D): span keys
        rq = self.router(q)  # (B, H, T, D)
        route = (rq @ k_bar.transpose(-1, -2)) * self.score_scale  # (B, H, T, R): ρ_ip
        blk = torch.arange(T, device=dev) // S
        others = torch.arange(R, device=dev)[None, :]
        eligible = (others != blk[:, None]) & ((others < blk[:, None]) if self.causal else True)  # (T, R)
        n = min(self.top_k - 1, R - 1)
        if n > 0:
            idx = route.detach().masked_fill(~eligible, float("-inf")).topk(n, dim=-1).indices  # (B, H, T, n)
        else:
            idx = torch.zeros(B, H, T, 0, dtype=torch.long, device=dev)
        picked_ok = eligible.expand(B, H, T, R).gather(-1, idx)  # (B, H, T, n)
        own, v_own, sel, vg = own_and_gathered(q, k, v, S, idx, self.causal, self.score_scale)
        y_own = (own.softmax(-1).unsqueeze(-1) * v_own).sum(-2)  # (B, H, T, E)
        sel = sel.masked_fill(~picked_ok[..., None], 0.0)  # an unusable pick: any finite row, gated to 0 below
        y_sel = (sel.softmax(-1).unsqueeze(-1) * vg).sum(-2)  # (B, H, T, n, E)
        if self.causal:  # the own span's key is the mean of its keys up to i: the rest is the future
            counts = torch.arange(1, S + 1, device=dev, dtype=q.dtype)[:, None]
            k_pre = (kb.cumsum(-2) / counts).flatten(2, 3)[:, :, :T]  # (B, H, T, D)
            route_own = (rq * k_pre).sum(-1, keepdim=True) * self.score_scale
        else:
            route_own = route.gather(-1, blk.expand(B, H, T)[..., None])
        gate_logits = torch.cat([route_own,
                                 route.gather(-1, idx).masked_fill(~picked_ok, float("-inf"))], -1)
        g = gate_logits.softmax(-1)  # (B, H, T, 1 + n)
        return g[..., :1] * y_own + (g[..., 1:, None] * y_sel).sum(-2)

    @torch.no_grad()
    def attention_weights(self, x: torch.Tensor, qk: torch.Tensor | None = None) -> torch.Tensor:
        """(B, H, T, T): ``mix`` applied to one-hot values (it is linear in v)."""
        q, k, _ = self._project(x, None)
        B, H, T, _ = q.shape
        return self.mix(q, k, torch.eye(T, dtype=q.dtype, device=q.device).expand(B, H, T, T))

    def flops_per_token(self, seq_len: int) -> int:
        """2·(params but W_r) + per head: 2·d_h² (router) + 2·d_h per span score (R spans) + 2·d_h for the span keys,
        2·2·d_h per attended key (own span + top_k − 1 spans of S)."""
        T = seq_len
        S = self.S(T)
        R = math.ceil(T / S)
        own = sum((i % S + 1) if self.causal else S for i in range(T)) / T
        picked = sum(min(self.top_k - 1, (i // S) if self.causal else R - 1) for i in range(T)) / T * S
        params = sum(p.numel() for p in self.parameters()) - self.router.weight.numel()  # W_r runs per head
        D = self.D
        return int(2 * params + self.H * (2 * D * D + 2 * D * R + 2 * D + 4 * D * (own + picked)))
