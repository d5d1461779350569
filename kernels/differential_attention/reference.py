"""The PyTorch reference: the two maps through the one eager softmax reference, combined as the
``differential`` mixer does (y = A_1·V − λ·A_2·V, r = 1)."""

from __future__ import annotations

import torch

from ..flash_attention.reference import attention_reference


def differential_attention_reference(q1, k1, q2, k2, v, lam: torch.Tensor, causal: bool = True,
                                     scale: float | None = None) -> torch.Tensor:
    """Shapes as ``differential_attention``; computed in float32, returned in v's dtype."""
    f = [t.float() for t in (q1, k1, q2, k2, v)]
    y = attention_reference(f[0], f[1], f[4], causal, scale) - lam.float() * attention_reference(f[2], f[3], f[4], causal, scale)
    return y.to(v.dtype)
