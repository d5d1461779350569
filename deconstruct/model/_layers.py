"""Small shared layers: norms and rotary position embeddings."""

from __future__ import annotations

import torch
from torch import nn


class RMSNorm(nn.Module):
    """RMSNorm (Zhang & Sennrich 2019): x / rms(x) · g."""

    def __init__(self, dim: int, eps: float = 1e-6, affine: bool = True):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim)) if affine else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.nn.functional.rms_norm(x, (x.shape[-1],), self.weight, self.eps)
        return y


def make_norm(kind: str, dim: int, bias: bool) -> nn.Module:
    if kind == "rmsnorm":
        return RMSNorm(dim)
    return nn.LayerNorm(dim, bias=bias)


class Rotary(nn.Module):
    """Rotary position embedding (Su et al. 2021) applied to (B, H, T, D) queries or keys."""

    cos: torch.Tensor  # (T_max, D/2) buffers, registered in __init__
    sin: torch.Tensor

    def __init__(self, head_dim: int, max_seq_len: int, base: float = 10000.0):
        super().__init__()
        inv = 1.0 / base ** (torch.arange(0, head_dim, 2).float() / head_dim)  # (D/2,)
        t = torch.arange(max_seq_len).float()
        freqs = torch.outer(t, inv)  # (T, D/2)
        self.register_buffer("cos", freqs.cos(), persistent=False)
        self.register_buffer("sin", freqs.sin(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T = x.shape[-2]
        cos, sin = self.cos[:T].to(x.dtype), self.sin[:T].to(x.dtype)  # (T, D/2)
        x1, x2 = x[..., 0::2], x[..., 1::2]
        out = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)
        return out.flatten(-2)
