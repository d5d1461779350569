"""The attention kernel dispatch: every softmax-form mixer calls :func:`attend`.

Backends: ``eager`` (the PyTorch reference), ``sdpa`` (torch's fused scaled_dot_product_attention, the CPU
fast path), ``triton`` (deconstruct.kernels, CUDA only), ``compile`` (torch.compile of the reference) and
``auto`` (triton on CUDA when it imports, otherwise sdpa).
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F


def attention_eager(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = True, scale: float | None = None
) -> torch.Tensor:
    """Reference attention. q (B, H, T, D); k, v (B, H_kv, S, D) with H_kv dividing H (GQA)."""
    B, H, T, D = q.shape
    if k.shape[1] != H:  # GQA: repeat each kv head for its group of query heads
        k = k.repeat_interleave(H // k.shape[1], dim=1)
        v = v.repeat_interleave(H // v.shape[1], dim=1)
    scale = 1.0 / math.sqrt(D) if scale is None else scale
    att = (q @ k.transpose(-2, -1)).float() * scale  # (B, H, T, S)
    if causal:
        S = k.shape[2]
        mask = torch.ones(T, S, dtype=torch.bool, device=q.device).tril(S - T)
        att = att.masked_fill(~mask, float("-inf"))
    return (att.softmax(dim=-1).to(v.dtype) @ v)  # (B, H, T, D)


def attention_sdpa(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = True, scale: float | None = None
) -> torch.Tensor:
    gqa = k.shape[1] != q.shape[1]
    return F.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=scale, enable_gqa=gqa)


@lru_cache(maxsize=1)
def _compiled():
    return torch.compile(attention_eager, dynamic=True)


@lru_cache(maxsize=8)
def _triton_ok(device_type: str) -> bool:
    if device_type != "cuda":
        return False
    try:
        from deconstruct.kernels import triton_available

        return bool(triton_available())
    except Exception:
        return False


TRITON_HEAD_DIMS = (16, 32, 64, 128)


def _triton_shapes_ok(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> bool:
    D = q.shape[-1]
    return D in TRITON_HEAD_DIMS and k.shape[-1] == D and v.shape[-1] == D and q.shape[-2] == k.shape[-2]


def pick_backend(requested: str, device: torch.device) -> str:
    """Resolve ``auto`` (and an unavailable ``triton``) to the backend actually used on ``device``."""
    if requested == "auto":
        return "triton" if _triton_ok(device.type) else "sdpa"
    if requested == "triton" and not _triton_ok(device.type):
        raise RuntimeError("backend 'triton' needs a CUDA device and the triton package; use auto, sdpa or eager")
    return requested


def attend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    causal: bool = True,
    backend: str = "sdpa",
    scale: float | None = None,
) -> torch.Tensor:
    """Softmax attention through the chosen backend. Shapes as :func:`attention_eager`."""
    if backend == "sdpa":
        return attention_sdpa(q, k, v, causal, scale)
    if backend == "eager":
        return attention_eager(q, k, v, causal, scale)
    if backend == "triton":
        from deconstruct.kernels import flash_attention

        return flash_attention(q, k, v, causal=causal, scale=scale)
    if backend == "compile":
        return _compiled()(q, k, v, causal, scale)
    if backend == "auto":
        chosen = pick_backend("auto", q.device)
        if chosen == "triton" and not _triton_shapes_ok(q, k, v):
            chosen = "sdpa"  # the kernel's head widths are 16/32/64/128 with equal q/k/v widths
        return attend(q, k, v, causal, chosen, scale)
    raise ValueError(f"unknown attention backend {backend!r}")
