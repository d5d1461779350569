"""Plain PyTorch attention: the ground truth every fused kernel is tested against.

Eager, readable, and slow on purpose: it materialises the full (T, T) score matrix and
accumulates in float32 whatever the input dtype, then casts the output back.
"""

from __future__ import annotations

import math

import torch


def attention_reference(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    causal: bool = True,
    scale: float | None = None,
) -> torch.Tensor:
    """softmax(q @ k^T * scale [+ causal mask]) @ v, computed in float32.

    q: (B, H, T, D); k, v: (B, H_kv, S, D) with H_kv dividing H (grouped-query attention:
    query head h reads kv head h // (H // H_kv)). The causal mask is top-left aligned
    (query i sees keys j <= i), matching ``F.scaled_dot_product_attention(is_causal=True)``.
    Returns (B, H, T, D) in q's dtype. Differentiable through autograd.
    """
    B, H, T, D = q.shape
    H_kv, S = k.shape[1], k.shape[2]
    if H % H_kv != 0:
        raise ValueError(f"number of query heads ({H}) must be a multiple of kv heads ({H_kv})")
    if H_kv != H:
        # (B, H_kv, S, D) -> (B, H, S, D): each kv head is shared by H // H_kv consecutive query heads
        k = k.repeat_interleave(H // H_kv, dim=1)
        v = v.repeat_interleave(H // H_kv, dim=1)
    scale = 1.0 / math.sqrt(D) if scale is None else scale

    scores = torch.matmul(q.float(), k.float().transpose(-2, -1)) * scale  # (B, H, T, S)
    if causal:
        mask = torch.ones(T, S, dtype=torch.bool, device=q.device).triu(diagonal=1)  # True above diagonal
        scores = scores.masked_fill(mask, float("-inf"))
    probs = torch.softmax(scores, dim=-1)  # (B, H, T, S)
    out = torch.matmul(probs, v.float())  # (B, H, T, D)
    return out.to(q.dtype)
