"""FlexAttention (``torch.nn.attention.flex_attention``) for the sparse patterns of ``window`` and
``biformer``: the pattern is a ``mask_mod`` turned into a block mask, so key blocks no query of a query block
may see are never computed. On CUDA the call is compiled (FlexAttention's fused Triton kernels, forward and
backward); on the CPU FlexAttention runs eagerly (dense, for the tests that check its forward against the
dense reference).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import torch


@lru_cache(maxsize=1)
def _api() -> Any:
    """The flex_attention module, or None when this torch lacks it."""
    try:
        from torch.nn.attention import flex_attention
    except Exception:
        return None
    return flex_attention


def flex_runs_on(device: torch.device) -> bool:
    """FlexAttention is the fast path on CUDA devices (compiled to fused kernels); elsewhere it is not."""
    return device.type == "cuda" and _api() is not None


@lru_cache(maxsize=1)
def _compiled() -> Any:
    return torch.compile(_api().flex_attention, dynamic=False)


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, block_mask: Any, scale: float | None) -> torch.Tensor:
    fn = _compiled() if q.device.type == "cuda" else _api().flex_attention
    return fn(q, k, v, block_mask=block_mask, scale=scale)


def _block_size(device: torch.device) -> int:
    return 128 if device.type == "cuda" else 16  # FlexAttention's GPU tile; small on the CPU (tests)


def window_block_mask(T: int, size: int, dilation: int, causal: bool, device: torch.device) -> Any:
    """The block mask of the (dilated) window: δ | (i − j) and 0 ≤ i − j ≤ (w − 1)·δ, or |i − j| ≤ ⌊w/2⌋·δ."""
    span, half = (size - 1) * dilation, (size // 2) * dilation

    def mask_mod(b, h, q_idx, kv_idx):
        rel = q_idx - kv_idx
        near = (rel >= 0) & (rel <= span) if causal else (rel <= half) & (rel >= -half)
        return near & (rel % dilation == 0)

    return _api().create_block_mask(mask_mod, None, None, T, T, device=device, BLOCK_SIZE=_block_size(device))


def window_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, block_mask: Any,
                     scale: float | None = None) -> torch.Tensor:
    """q, k, v (B, H, T, D) under a :func:`window_block_mask` → (B, H, T, D)."""
    return _attend(q, k, v, block_mask, scale)


def routed_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, regions: torch.Tensor, valid: torch.Tensor,
                     S: int, causal: bool, scale: float | None = None) -> torch.Tensor:
    """BiFormer's token level from a routing (``_biformer.route``) as a per-(batch, head) block mask:
    causal, token i sees its own region's keys j ≤ i and every key of its valid picks; non-causal, every key
    of its region's top_k regions. q, k, v (B, H, T, D) → (B, H, T, D)."""
    B, H, T, _ = q.shape
    R = -(-T // S)
    keep = torch.zeros(B, H, regions.shape[2], R, dtype=torch.bool, device=q.device)
    keep.scatter_(-1, regions, valid)  # (B, H, T or R, R)

    if causal:
        def mask_mod(b, h, q_idx, kv_idx):
            own = (q_idx // S == kv_idx // S) & (kv_idx <= q_idx)
            return own | keep[b, h, q_idx, kv_idx // S]
    else:
        def mask_mod(b, h, q_idx, kv_idx):
            return keep[b, h, q_idx // S, kv_idx // S]

    mask = _api().create_block_mask(mask_mod, B, H, T, T, device=q.device, BLOCK_SIZE=_block_size(q.device))
    return _attend(q, k, v, mask, scale)
