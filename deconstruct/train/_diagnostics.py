"""Attention indicators logged by Xue et al. 2025 (MECHANISMS.md §1), per layer and head.

For every mixer that can show its mixing matrix (a method ``attention_weights(x, qk) -> (B, H, T, T)``; for
softmax-like forms the rows sum to 1), on a few validation sequences:

- ``entropy``        −Σ_j a_ij log a_ij, mean over queries and batch (nats)
- ``concentration``  ‖A‖_F of the (T, T) map, mean over batch
- ``sink``           attention paid to position 1, mean over queries and batch
- ``local_N``        mean of the N-th sub-diagonal a_{i, i−N}, N = 0 … 3 (local focus)
- ``head_diversity`` (head = −1) mean over positions of the std across heads of the map

Mixers without ``attention_weights`` (the token-wise MLP, which mixes nothing) are skipped. Linear-time forms
(approximate, non_approximate) expose the equivalent O(T²) matrix for this purpose only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from deconstruct.model import Transformer

Diagnostic = tuple[int, int, str, float]  # (layer 1-based, head or -1, name, value)


def attention_indicators(A: torch.Tensor) -> dict[str, torch.Tensor]:
    """A (B, H, T, T) → per-head indicators, each (H,); plus head_diversity as a scalar tensor."""
    A = A.float()
    B, H, T, _ = A.shape
    eps = torch.finfo(A.dtype).tiny
    out = {
        "entropy": -(A * (A + eps).log()).sum(-1).mean(dim=(0, 2)),
        "concentration": A.flatten(2).norm(dim=-1).mean(0),
        "sink": A[..., 0].mean(dim=(0, 2)),
    }
    for n in range(4):
        if n < T:
            out[f"local_{n}"] = A.diagonal(offset=-n, dim1=-2, dim2=-1).mean(dim=(0, 2))
    out["head_diversity"] = A.std(dim=1).mean() if H > 1 else torch.zeros(())
    return out


@torch.no_grad()
def collect_diagnostics(model: Transformer, x: torch.Tensor) -> list[Diagnostic]:
    """Run ``model`` on ``x`` (B, T), capture each block's mixer input, and compute the indicators."""
    captured: dict[int, tuple] = {}
    handles = []
    blocks = model.block_list()
    for i, block in enumerate(blocks):
        if hasattr(block.mixer, "attention_weights"):
            def hook(mod, args, i=i):  # args = (x_normed, qk_normed)
                captured[i] = args
            handles.append(block.mixer.register_forward_pre_hook(hook))
    was_training = model.training
    model.eval()
    try:
        model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    rows: list[Diagnostic] = []
    for i, args in sorted(captured.items()):
        A = blocks[i].mixer.attention_weights(*args)  # (B, H, T, T)
        for name, value in attention_indicators(A).items():
            if value.dim() == 0:
                rows.append((i + 1, -1, name, float(value)))
            else:
                rows += [(i + 1, h, name, float(v)) for h, v in enumerate(value.tolist())]
    return rows
