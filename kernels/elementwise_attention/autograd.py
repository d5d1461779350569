"""Autograd wrapper of the fused sigmoid / ReLU attention and its public entry point (Triton imported on the
first call, so importing this file needs only torch)."""

from __future__ import annotations

import math

import torch
from torch.autograd.function import once_differentiable

from ..flash_attention.autograd import check_inputs


def _kernel():
    try:
        from . import triton_kernel
    except ImportError as exc:
        raise RuntimeError(f"elementwise_attention needs Triton, which failed to import: {exc}") from exc
    return triton_kernel


class ElementwiseAttentionFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, fn: str, causal: bool, scale: float):
        q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
        o = _kernel().forward(q, k, v, fn, causal, scale)
        ctx.save_for_backward(q, k, v)
        ctx.fn, ctx.causal, ctx.scale = fn, causal, scale
        return o

    @staticmethod
    @once_differentiable
    def backward(ctx, do):
        q, k, v = ctx.saved_tensors
        dq, dk, dv = _kernel().backward(do, q, k, v, ctx.fn, ctx.causal, ctx.scale)
        return dq, dk, dv, None, None, None


def elementwise_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, fn: str = "sigmoid",
                          causal: bool = True, scale: float | None = None) -> torch.Tensor:
    """Fused ``(1/n_i)·Σ_j f(scale·q_i·k_j)·v_j`` (f = sigmoid | relu), same maths as the reference, O(T) memory.

    q (B, H, T, D); k, v (B, H_kv, T, D) with H_kv | H. D in 16/32/64/128; fp16, bf16 or fp32."""
    if fn not in ("sigmoid", "relu"):
        raise ValueError(f"fn must be 'sigmoid' or 'relu', got {fn!r}")
    check_inputs(q, k, v)
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    return ElementwiseAttentionFunction.apply(q, k, v, fn, bool(causal), scale)
