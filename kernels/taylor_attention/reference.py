"""The PyTorch reference of the kernel: ``form: approximate`` as the ``attention`` mixer computes it — the
chunked second-order Taylor linear attention of ``deconstruct.builtin._forms.taylor_attention`` (one
definition of the maths, there), causal.

    out_i = Σ_{j≤i} w(q_i, k_j)·v_j / Σ_{j≤i} w(q_i, k_j),  w = 1 + s + s²/2,  s = q_i·k_j/√d   (single)
    out_i = Σ_m Σ_{j≤i} w_m·v_j / Σ_{j≤i} w_m,  w_0 = 1, w_1 = s, w_2 = s²/2                    (separate)
"""

from __future__ import annotations

import torch


def taylor_attention_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, normalization: str = "single",
                               chunk_size: int = 64) -> torch.Tensor:
    """q, k (B, H, T, d); v (B, H, T, D_v) → (B, H, T, D_v) in v's dtype, computed in float32 at least."""
    from deconstruct.builtin._forms import taylor_attention

    return taylor_attention(q, k, v, causal=True, normalization=normalization, chunk_size=chunk_size)
