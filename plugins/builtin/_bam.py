"""nn.Module of the ``bam`` mixer (see ``bam.py``; Zhang et al. 2024, arXiv 2408.08274).

The E experts run as E·h heads of one attention call, ordered (head, expert) so that with ``share_kv`` the
h shared key/value heads serve groups of E query heads (grouped-query attention). Parameters (no bias):
router d·E; q_proj E·d²; kv_proj 2·d² (shared) or E·2·d²; out_proj E·d² (W_O of every expert side by side):
E·4·d² + d·E, or E·2·d² + 2·d² + d·E with ``share_kv``.
"""

from __future__ import annotations

import torch
from torch import nn

from deconstruct.model import MixerContext, Rotary, attend


class AttentionExperts(nn.Module):
    """Soft mixture of E multi-head attention experts, y = W_O·[g_1·z_1; …; g_E·z_E]."""

    def __init__(self, ctx: MixerContext, options):
        super().__init__()
        d, H = ctx.d_model, ctx.heads
        self.d, self.H, self.D, self.E = d, H, ctx.head_dim, options.experts
        self.causal, self.backend, self.share_kv = ctx.causal, ctx.backend, options.share_kv
        self.router = nn.Linear(d, self.E, bias=ctx.bias)
        self.q_proj = nn.Linear(d, self.E * d, bias=ctx.bias)  # rows (expert, head, D)
        self.kv_proj = nn.Linear(d, (1 if self.share_kv else self.E) * 2 * d, bias=ctx.bias)
        self.out_proj = nn.Linear(self.E * d, d, bias=ctx.bias)  # columns (expert, head, D)
        self.rotary = Rotary(self.D, ctx.max_seq_len) if ctx.positions == "rope" else None

    def _project(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (B, T, d) → q (B, H·E, T, D) ordered (head, expert); k, v (B, H or H·E, T, D)."""
        B, T, _ = x.shape
        H, E, D = self.H, self.E, self.D
        q = self.q_proj(x).view(B, T, E, H, D).permute(0, 3, 2, 1, 4).reshape(B, H * E, T, D)
        Ek = 1 if self.share_kv else E
        k, v = self.kv_proj(x).view(B, T, 2, Ek, H, D).permute(2, 0, 4, 3, 1, 5).reshape(2, B, H * Ek, T, D)
        if self.rotary is not None:
            q, k = self.rotary(q), self.rotary(k)
        return q, k, v

    def forward(self, x: torch.Tensor, qk: torch.Tensor | None = None) -> torch.Tensor:
        B, T, _ = x.shape
        q, k, v = self._project(x)
        z = attend(q, k, v, causal=self.causal, backend=self.backend if not self.share_kv else "sdpa")  # (B, H·E, T, D)
        g = self.router(x).softmax(-1)  # (B, T, E): soft routing over the experts
        z = z.view(B, self.H, self.E, T, self.D).permute(0, 3, 2, 1, 4)  # (B, T, E, H, D)
        z = z * g[..., None, None]
        return self.out_proj(z.reshape(B, T, self.E * self.d))

    @torch.no_grad()
    def attention_weights(self, x: torch.Tensor, qk: torch.Tensor | None = None) -> torch.Tensor:
        """(B, H·E, T, T): every expert's heads' softmax maps, ordered (head, expert)."""
        q, k, _ = self._project(x)
        k = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1)
        s = (q @ k.transpose(-1, -2)).float() / self.D**0.5
        if self.causal:
            T = s.shape[-1]
            s = s.masked_fill(~torch.ones(T, T, dtype=torch.bool, device=s.device).tril(), float("-inf"))
        return s.softmax(-1)

    def flops_per_token(self, seq_len: int) -> int:
        """2·params + E·h heads of 2·span·(D + D) mixing (span (T+1)/2 causal, T otherwise)."""
        T = seq_len
        span = (T + 1) / 2 if self.causal else T
        params = sum(p.numel() for p in self.parameters())
        return int(2 * params + 2 * span * self.E * self.H * 2 * self.D)
