"""Attention indicators logged by Xue et al. 2025 (MECHANISMS.md §1), per layer and head.

For every mixer that can show its mixing matrix (a method ``attention_weights(x, qk) -> (B, H, T, T)``; for
softmax-like forms the rows sum to 1), on a few validation sequences:

- ``entropy``        −Σ_j a_ij log a_ij, mean over queries and batch (nats)
- ``concentration``  ‖A‖_F of the (T, T) map, mean over batch
- ``sink``           attention paid to position 1, mean over queries and batch
- ``local_N``        mean of the N-th sub-diagonal a_{i, i−N}, N = 0 … 3 (local focus)
- ``head_diversity`` (head = −1) mean over positions of the std across heads of the map
- ``sink_secondary``  the strongest *secondary* sink (Wong et al. 2025): over key positions j ≥ 2 (1-based),
                     the largest mean attention a key receives from the queries after it, i > j
- ``sink_secondary_pos`` the 1-based position of that key
- ``sink_secondary_mlp_norm`` (head = −1, layers ≥ 2 whose previous block has a channel mixer) the norm of
                     the previous block's channel-mixer (MLP) output at the layer's secondary sink (heads
                     averaged), divided by the median norm over positions ≥ 2 — Wong et al.'s predictor: a
                     secondary sink forms where a middle-layer MLP writes an outsized vector

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
    if T >= 3:
        score = secondary_sink_scores(A)  # (H, T − 2)
        best = score.max(-1)
        out["sink_secondary"] = best.values
        out["sink_secondary_pos"] = (best.indices + 2).float()  # 1-based: score[0] is position 2
    return out


def secondary_sink_scores(A: torch.Tensor) -> torch.Tensor:
    """A (B, H, T, T) → (H, T − 2): for key positions j = 1 … T − 2 (0-based), the mean attention it gets
    from the queries strictly after it, averaged over the batch."""
    A = A.float().mean(0)  # (H, T, T)
    T = A.shape[-1]
    after = torch.ones(T, T, dtype=torch.bool, device=A.device).tril(-1)  # query i > key j
    received = (A * after).sum(-2) / after.sum(0).clamp_min(1)  # (H, T)
    return received[:, 1 : T - 1]


def mlp_norm_at(norms: torch.Tensor, position: int) -> float:
    """norms (B, T) of an MLP output → mean over the batch of ‖m_position‖ / median_{j ≥ 1} ‖m_j‖ (0-based)."""
    rest = norms[:, 1:]
    return float((norms[:, position] / rest.median(-1).values.clamp_min(1e-12)).mean())


@torch.no_grad()
def collect_diagnostics(model: Transformer, x: torch.Tensor) -> list[Diagnostic]:
    """Run ``model`` on ``x`` (B, T), capture each block's mixer input, and compute the indicators."""
    captured: dict[int, tuple] = {}
    mlp_norms: dict[int, torch.Tensor] = {}  # block → (B, T) norms of its channel mixer's output
    handles = []
    blocks = model.block_list()
    for i, block in enumerate(blocks):
        if block.channel is not None:
            def out_hook(mod, args, out, i=i):
                mlp_norms[i] = out.float().norm(dim=-1)
            handles.append(block.channel.register_forward_hook(out_hook))
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
        if i - 1 in mlp_norms and A.shape[-1] >= 3:
            j = int(secondary_sink_scores(A).mean(0).argmax()) + 1  # 0-based key position, heads averaged
            rows.append((i + 1, -1, "sink_secondary_mlp_norm", mlp_norm_at(mlp_norms[i - 1], j)))
    return rows
