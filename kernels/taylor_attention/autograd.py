"""Autograd wrapper of the chunked Taylor linear attention and its public entry point (Triton imported on the
first call, so importing this file needs only torch).

The Function's outputs are the per-order numerators and normalisers (float32, written by the forward
kernel of ``triton_kernel.py``); the division is done outside it, in PyTorch under autograd, exactly as the
mixer divides (``_forms._combine``: one normaliser, or one per order). The backward kernels receive the
gradients of those numerators and normalisers and return dq, dk, dv.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from ..flash_attention.autograd import SUPPORTED_DTYPES, SUPPORTED_HEAD_DIMS

#: query/key widths the kernel takes (its second-order state is d² rows: Based uses d = 16)
SUPPORTED_QK_DIMS = (16, 32, 64)
NORMALIZATIONS = ("single", "separate")


def _kernel():
    try:
        from . import triton_kernel
    except ImportError as exc:
        raise RuntimeError(f"taylor_attention needs Triton, which failed to import: {exc}") from exc
    return triton_kernel


def kernel_takes(qk_dim: int, v_dim: int) -> bool:
    """Whether the kernel runs for these head widths (the mixer keeps the PyTorch path otherwise)."""
    return qk_dim in SUPPORTED_QK_DIMS and v_dim in SUPPORTED_HEAD_DIMS


class TaylorAttentionFunction(torch.autograd.Function):
    """(q, k, v, orders_apart) → numerators (M, B, H, T, D_v) and normalisers (M, B, H, T), float32;
    M = 3 Taylor orders apart (``separate``) or 1 summed (``single``)."""

    @staticmethod
    def forward(ctx, q, k, v, orders_apart: bool):
        q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
        num, den = _kernel().forward(q, k, v, orders_apart)
        ctx.save_for_backward(q, k, v)
        return num, den

    @staticmethod
    @once_differentiable
    def backward(ctx, dnum, dden):
        q, k, v = ctx.saved_tensors
        dq, dk, dv = _kernel().backward(q, k, v, dnum, dden)
        return dq, dk, dv, None


def taylor_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, normalization: str = "single") -> torch.Tensor:
    """Causal second-order Taylor linear attention (``form: approximate``), forward and backward fused, O(T)
    memory (the kernels walk 16-token chunks whatever the mixer's ``chunk_size``: the same sums, another order).

    q, k (B, H, T, d) with d in 16/32/64; v (B, H, T, D_v) with D_v in 16/32/64/128; equal head counts (the
    mixer repeats GQA groups first); fp16, bf16 or fp32 (mixed: computed in the widest). Returns (B, H, T, D_v) in v's dtype."""
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be 'single' or 'separate', got {normalization!r}")
    if q.dim() != 4 or q.shape != k.shape or v.dim() != 4 or v.shape[:3] != q.shape[:3]:
        raise ValueError(f"q, k must be (B, H, T, d) and v (B, H, T, D_v); got {tuple(q.shape)}, "
                         f"{tuple(k.shape)}, {tuple(v.shape)}")
    if not kernel_takes(q.shape[-1], v.shape[-1]):
        raise ValueError(f"head widths d={q.shape[-1]}, D_v={v.shape[-1]} unsupported; d in {SUPPORTED_QK_DIMS}, "
                         f"D_v in {SUPPORTED_HEAD_DIMS}")
    dtype = torch.promote_types(torch.promote_types(q.dtype, k.dtype), v.dtype)  # e.g. bf16 q, k and fp32 v
    if dtype not in SUPPORTED_DTYPES:
        raise ValueError(f"q, k, v dtypes must be in {SUPPORTED_DTYPES}; got {q.dtype}, {k.dtype}, {v.dtype}")
    from deconstruct.builtin._forms import _combine

    num, den = TaylorAttentionFunction.apply(q.to(dtype), k.to(dtype), v.to(dtype), normalization == "separate")
    return _combine(list(num), list(den), normalization).to(v.dtype)
