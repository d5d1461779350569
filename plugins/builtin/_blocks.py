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
    return t[batch_head_index(t, idx)]


def batch_head_index(t: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Advanced-indexing tuple picking t[b, h, idx[b, h, …]] (no index tensor as large as the result)."""
    B, H = idx.shape[:2]
    extra = (1,) * (idx.dim() - 2)
    bi = torch.arange(B, device=idx.device).view(B, 1, *extra)
    hi = torch.arange(H, device=idx.device).view(1, H, *extra)
    return bi, hi, idx


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
    R, E = kb.shape[2], vb.shape[-1]
    pos = torch.arange(R * S, device=q.device).view(R, S)
    ok = pos[:, None, :] < T
    if causal:
        ok = ok & (pos[:, :, None] >= pos[:, None, :])
    own = ((qb @ kb.transpose(-1, -2)) * scale).masked_fill(~ok, float("-inf"))  # (B, H, R, S, S)
    own = own.reshape(B, H, R * S, S)[:, :, :T]
    v_own = vb.unsqueeze(3).expand(-1, -1, -1, S, -1, -1).reshape(B, H, R * S, S, E)[:, :, :T]
    where = batch_head_index(kb, idx)
    kg, vg = kb[where], vb[where]  # (B, H, T, n, S, D), (B, H, T, n, S, E)
    sel = torch.einsum("bhtd,bhtnsd->bhtns", q, kg) * scale
    sel = sel.masked_fill(~(pos[idx] < T), float("-inf"))
    return own, v_own, sel, vg
