"""Autograd wrapper of differential attention (r = 1, DiffAttn): y = softmax(Q1K1ᵀ)V − λ·softmax(Q2K2ᵀ)V.

Forward: one fused pass over K/V for both maps (``triton_kernel.py``). Backward: the FlashAttention
backward kernels once per map — dO for the first, −λ·dO for the second — with queries and keys zero-padded
from D to the value width 2·D (same scores; the kernels want one head width), and dλ = −Σ dO·o2.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from ..flash_attention.autograd import SUPPORTED_HEAD_DIMS, check_inputs


def _kernels():
    try:
        from ..flash_attention import triton_kernel as flash
        from . import triton_kernel as diff
    except ImportError as exc:
        raise RuntimeError(f"differential_attention needs Triton, which failed to import: {exc}") from exc
    return diff, flash


class DifferentialAttentionFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q1, k1, q2, k2, v, lam, causal: bool, scale: float):
        q1, k1, q2, k2, v = (t.contiguous() for t in (q1, k1, q2, k2, v))
        o1, o2, lse1, lse2 = _kernels()[0].forward(q1, k1, q2, k2, v, causal, scale)
        ctx.save_for_backward(q1, k1, q2, k2, v, o1, o2, lse1, lse2, lam)
        ctx.causal, ctx.scale = causal, scale
        return o1 - lam.to(o1.dtype) * o2

    @staticmethod
    @once_differentiable
    def backward(ctx, dy):
        q1, k1, q2, k2, v, o1, o2, lse1, lse2, lam = ctx.saved_tensors
        flash = _kernels()[1]
        pad = v.shape[-1] - q1.shape[-1]  # q, k widened to the value width with zeros: same scores

        def widen(t):
            return F.pad(t, (0, pad)).contiguous()

        dy = dy.contiguous()
        dq1, dk1, dv1 = flash.attention_backward(dy, widen(q1), widen(k1), v, o1, lse1, ctx.causal, ctx.scale)
        dy2 = (-lam.to(dy.dtype) * dy).contiguous()
        dq2, dk2, dv2 = flash.attention_backward(dy2, widen(q2), widen(k2), v, o2, lse2, ctx.causal, ctx.scale)
        dlam = -(dy.float() * o2.float()).sum().to(lam.dtype)
        D = q1.shape[-1]
        return dq1[..., :D], dk1[..., :D], dq2[..., :D], dk2[..., :D], dv1 + dv2, dlam, None, None


def differential_attention(q1: torch.Tensor, k1: torch.Tensor, q2: torch.Tensor, k2: torch.Tensor, v: torch.Tensor,
                           lam: torch.Tensor, causal: bool = True, scale: float | None = None) -> torch.Tensor:
    """y = softmax(scale·q1k1ᵀ)v − λ·softmax(scale·q2k2ᵀ)v, both maps in one pass over k/v.

    q1, k1, q2, k2 (B, H, T, D); v (B, H, T, DV) with D, DV in 16/32/64/128 (DiffAttn: DV = 2·D); λ a scalar
    tensor (differentiable). scale defaults to 1/√D. Returns (B, H, T, DV)."""
    check_inputs(q1, k1, k1)
    check_inputs(q2, k2, k2)
    if v.shape[:3] != q1.shape[:3] or v.shape[-1] not in SUPPORTED_HEAD_DIMS or v.shape[-1] < q1.shape[-1]:
        raise ValueError(f"v must be (B, H, T, DV) with DV ≥ D in {SUPPORTED_HEAD_DIMS}; got {tuple(v.shape)}")
    scale = 1.0 / math.sqrt(q1.shape[-1]) if scale is None else float(scale)
    return DifferentialAttentionFunction.apply(q1, k1, q2, k2, v, lam.reshape(()), bool(causal), scale)
