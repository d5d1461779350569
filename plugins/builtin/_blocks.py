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


def own_and_gathered(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, S: int, idx: torch.Tensor,
                     causal: bool, scale: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Exact logits of each query against its own block and against the n blocks ``idx`` names.

    q, k (B, H, T, D), v (B, H, T, E), idx (B, H, T, n) block indices → own (B, H, T, S) logits (−inf outside
    the block, after the query when causal, and on padding), v_own (B, H, T, S, E), sel (B, H, T, n, S)
    logits (−inf on padding), vg (B, H, T, n, S, E). Memory O(T·n·S·(D + E)); nothing T×T.
    """
    B, H, T, D = q.shape
    qb, kb, vb = to_blocks(q, S), to_blocks(k, S), to_blocks(v, S)  # (B, H, R, S, ·)
    R, E, n = kb.shape[2], vb.shape[-1], idx.shape[-1]
    pos = torch.arange(R * S, device=q.device).view(R, S)
    ok = pos[:, None, :] < T
    if causal:
        ok = ok & (pos[:, :, None] >= pos[:, None, :])
    own = ((qb @ kb.transpose(-1, -2)) * scale).masked_fill(~ok, float("-inf"))  # (B, H, R, S, S)
    own = own.reshape(B, H, R * S, S)[:, :, :T]
    v_own = vb.unsqueeze(3).expand(-1, -1, -1, S, -1, -1).reshape(B, H, R * S, S, E)[:, :, :T]
    flat = idx.reshape(B, H, T * n)[..., None, None]
    kg = kb.gather(2, flat.expand(-1, -1, -1, S, D)).view(B, H, T, n, S, D)
    vg = vb.gather(2, flat.expand(-1, -1, -1, S, E)).view(B, H, T, n, S, E)
    sel = torch.einsum("bhtd,bhtnsd->bhtns", q, kg) * scale
    sel = sel.masked_fill(~(pos[idx] < T), float("-inf"))
    return own, v_own, sel, vg
