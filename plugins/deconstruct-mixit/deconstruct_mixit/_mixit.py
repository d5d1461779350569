"""The MixiT ``nn.Module`` (see the package docstring for the equations and the paper)."""

from __future__ import annotations

import math

import torch
from torch import nn


def default_sigma(max_seq_len: int, head_dim: int) -> float:
    """σ = 1/√(T_max·d_head), the scale of the authors' code."""
    return 1.0 / math.sqrt(max_seq_len * head_dim)


def mixing_map(heads: int, max_seq_len: int, c: float, sigma: float) -> torch.Tensor:
    """(H, T, T) maps A_h = tril(I + c·(N_h − drift_h)), N_h ~ N(0, σ²) from torch's global generator.

    drift_h,i is the mean of N_h,ij over the causal entries j ≤ i, so each row of the random part sums to 0
    and each row of A_h sums to exactly 1.
    """
    T = max_seq_len
    causal = torch.ones(T, T, dtype=torch.bool).tril()  # (T, T)
    noise = torch.randn(heads, T, T) * sigma * causal  # (H, T, T), zero above the diagonal
    drift = noise.sum(-1, keepdim=True) / torch.arange(1, T + 1, dtype=noise.dtype).unsqueeze(-1)  # (H, T, 1)
    return (torch.eye(T) + c * (noise - drift)).tril()  # (H, T, T), exactly 0 above the diagonal


class MixiT(nn.Module):
    """out = W_O · concat_h(A_h · x W_V,h) with A_h fixed (a buffer); no queries or keys."""

    qk_source = "hidden"  # it uses no queries/keys at all

    def __init__(self, ctx, options):
        super().__init__()
        d, self.H, self.D = ctx.d_model, ctx.heads, ctx.head_dim
        sigma = options.sigma if options.sigma is not None else default_sigma(ctx.max_seq_len, self.D)
        self.v_proj = nn.Linear(d, self.H * self.D, bias=ctx.bias)  # W_V (trained)
        self.out_proj = nn.Linear(self.H * self.D, d, bias=ctx.bias)  # W_O (trained)
        # A: (H, T_max, T_max), frozen. A buffer: saved with the model, moved with .to(), never trained.
        self.register_buffer("A", mixing_map(self.H, ctx.max_seq_len, options.c, sigma))

    def forward(self, x: torch.Tensor, qk: torch.Tensor | None = None) -> torch.Tensor:
        B, T, _ = x.shape
        if T > self.A.shape[-1]:
            raise ValueError(f"MixiT was built for sequences of at most {self.A.shape[-1]} tokens, got {T}")
        v = self.v_proj(x).view(B, T, self.H, self.D).transpose(1, 2)  # (B, H, T, D)
        A = self.A[:, :T, :T].to(v.dtype)  # (H, T, T)
        y = A @ v  # (B, H, T, D)
        return self.out_proj(y.transpose(1, 2).reshape(B, T, self.H * self.D))

    def flops_per_token(self, seq_len: int) -> int:
        params = sum(p.numel() for p in self.parameters())
        span = (seq_len + 1) / 2  # mean number of positions a token mixes (lower-triangular map)
        return int(2 * params + 2 * span * self.H * self.D)  # projections + A·V
