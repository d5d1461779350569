"""Autograd wrapper around the Triton FlashAttention kernels, plus the public entry point.

The Triton module is imported lazily (on the first call), so importing this file needs only
torch; a missing Triton or an unusable device surfaces as a clear RuntimeError at call time.
"""

from __future__ import annotations

import math

import torch
from torch.autograd.function import once_differentiable

from .._env import interpreting

SUPPORTED_HEAD_DIMS = (16, 32, 64, 128)
SUPPORTED_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


def check_inputs(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    """Validate shapes, dtypes and devices; raise ValueError/RuntimeError with the reason."""
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError(
            f"q, k, v must be 4-D (B, H, T, D); got {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}"
        )
    B, H, T, D = q.shape
    if k.shape != v.shape:
        raise ValueError(f"k and v must have the same shape; got {tuple(k.shape)} and {tuple(v.shape)}")
    Bk, H_kv, Tk, Dk = k.shape
    if Bk != B or Tk != T or Dk != D:
        raise ValueError(
            f"k/v shape {tuple(k.shape)} is incompatible with q shape {tuple(q.shape)}: "
            "batch, sequence length and head dim must match"
        )
    if H_kv == 0 or H % H_kv != 0:
        raise ValueError(f"number of query heads ({H}) must be a multiple of kv heads ({H_kv})")
    if D not in SUPPORTED_HEAD_DIMS:
        raise ValueError(
            f"flash_attention: head dim must be a power of 2 in {SUPPORTED_HEAD_DIMS}, got {D}. "
            "Pad the head dim or use attention_reference."
        )
    if not (q.dtype == k.dtype == v.dtype):
        raise ValueError(f"q, k, v must share a dtype; got {q.dtype}, {k.dtype}, {v.dtype}")
    if q.dtype not in SUPPORTED_DTYPES:
        raise ValueError(f"unsupported dtype {q.dtype}; expected one of {SUPPORTED_DTYPES}")
    if not (q.device == k.device == v.device):
        raise ValueError(f"q, k, v must be on one device; got {q.device}, {k.device}, {v.device}")
    if q.device.type == "cuda":
        return
    if q.device.type == "cpu" and interpreting():
        return
    raise RuntimeError(
        f"flash_attention runs Triton kernels on CUDA tensors (got device {q.device}). "
        "On the CPU set TRITON_INTERPRET=1 before importing triton (slow, for tests), "
        "or use attention_reference."
    )


def _triton_kernel():
    try:
        from . import triton_kernel
    except ImportError as exc:  # triton missing or broken
        raise RuntimeError(f"flash_attention needs Triton, which failed to import: {exc}") from exc
    return triton_kernel


class FlashAttentionFunction(torch.autograd.Function):
    """o = softmax(q k^T * scale [causal]) v with a fused Triton forward and backward."""

    @staticmethod
    def forward(ctx, q, k, v, causal: bool, scale: float):
        # q: (B, H, T, D); k, v: (B, H_kv, T, D)
        kernel = _triton_kernel()
        q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
        o, lse = kernel.attention_forward(q, k, v, causal, scale)  # o: (B, H, T, D); lse: (B, H, T)
        ctx.save_for_backward(q, k, v, o, lse)
        ctx.causal = causal
        ctx.scale = scale
        return o

    @staticmethod
    @once_differentiable
    def backward(ctx, do):
        q, k, v, o, lse = ctx.saved_tensors
        dq, dk, dv = _triton_kernel().attention_backward(do, q, k, v, o, lse, ctx.causal, ctx.scale)
        return dq, dk, dv, None, None


def flash_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    causal: bool = True,
    scale: float | None = None,
) -> torch.Tensor:
    """Fused attention: same maths as ``attention_reference``, O(T) memory.

    q: (B, H, T, D); k, v: (B, H_kv, T, D) with H_kv dividing H (GQA). D in 16/32/64/128.
    dtype float16, bfloat16 or float32. scale defaults to 1/sqrt(D). Returns (B, H, T, D).
    """
    check_inputs(q, k, v)
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    if q.numel() == 0:  # nothing to launch (T == 0 or an empty batch)
        from .reference import attention_reference

        return attention_reference(q, k, v, causal=causal, scale=scale)
    return FlashAttentionFunction.apply(q, k, v, bool(causal), scale)
