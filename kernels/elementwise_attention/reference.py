"""The PyTorch reference of the fused kernel: ``form: sigmoid | relu`` as the ``attention`` mixer computes it
(one definition, in ``deconstruct.builtin._forms``), with GQA key/value heads repeated for their groups.

    out_i = (1 / n_i) · Σ_j f(scale · q_i·k_j) · v_j,   j ≤ i and n_i = i + 1 causal, all j and n_i = T otherwise
"""

from __future__ import annotations

import torch


def elementwise_attention_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, fn: str = "sigmoid",
                                    causal: bool = True, scale: float | None = None) -> torch.Tensor:
    """q (B, H, T, D); k, v (B, H_kv, T, D), H_kv | H → (B, H, T, D), computed in float32 at least."""
    from deconstruct.builtin._forms import elementwise_attention

    group = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
    return elementwise_attention(q, k, v, fn, causal, scale)
