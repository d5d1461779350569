"""Block helpers shared by the sub-quadratic mixers (``combiner``, ``sparsifiner``, ``rectified``,
``span_search``): cut a (B, H, T, D) sequence into R blocks of S tokens (the last one zero-padded), and
gather per-query key sets. Nothing here has parameters."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def default_block(T: int) -> int:
    """S = ⌈√T⌉: with R = ⌈T/S⌉ ≈ √T blocks, per-token cost S + R = O(√T), total O(T√T)."""
    return max(1, math.isqrt(max(T - 1, 0)) + 1) if T > 1 else 1


def to_blocks(t: torch.Tensor, S: int) -> torch.Tensor:
    """(B, H, T, D) → (B, H, R, S, D), R = ⌈T/S⌉, zero-padded at the end."""
    B, H, T, D = t.shape
    R = -(-T // S)
    if R * S != T:
        t = F.pad(t, (0, 0, 0, R * S - T))
    return t.view(B, H, R, S, D)


def from_blocks(t: torch.Tensor, T: int) -> torch.Tensor:
    """(B, H, R, S, D) → (B, H, T, D), dropping the padding."""
    B, H, R, S, D = t.shape
    return t.reshape(B, H, R * S, D)[:, :, :T]


def gather_keys(t: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """t (B, H, T, D), idx (B, H, T, k) long → (B, H, T, k, D): t[b, h, idx[b, h, i, m]]."""
    B, H, T, D = t.shape
    k = idx.shape[-1]
    flat = idx.reshape(B, H, T * k, 1).expand(-1, -1, -1, D)
    return t.gather(2, flat).view(B, H, T, k, D)


def neg_inf(t: torch.Tensor) -> float:
    """The most negative finite value of t's dtype (a masked logit that still has a gradient of zero)."""
    return torch.finfo(t.dtype).min
