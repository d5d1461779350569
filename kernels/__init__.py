"""Fused GPU kernels for attention, shipped as ``deconstruct.kernels``.

One folder per kernel (as in flash-linear-attention): the Triton kernel, its autograd wrapper
and a pure-PyTorch reference side by side.

    flash_attention/   causal / non-causal FlashAttention-2 with GQA
    benchmark.py       eager vs SDPA vs torch.compile vs Triton timings

Importing this package is cheap: torch and triton are imported inside the functions below.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["attention_reference", "benchmark_attention", "flash_attention", "triton_available"]


def triton_available() -> bool:
    """True when the Triton kernels can run here.

    That is: triton imports and either a CUDA device is present, or TRITON_INTERPRET=1 is set
    (kernels then run, slowly, on the CPU through Triton's interpreter).
    """
    try:
        import triton  # noqa: F401
    except Exception:
        return False
    if os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "yes", "on"):
        return True
    import torch

    return torch.cuda.is_available()


def flash_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    causal: bool = True,
    scale: float | None = None,
) -> torch.Tensor:
    """Fused Triton attention. q: (B, H, T, D); k, v: (B, H_kv, T, D). See flash_attention.autograd."""
    from .flash_attention.autograd import flash_attention as _flash_attention

    return _flash_attention(q, k, v, causal=causal, scale=scale)


def attention_reference(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    causal: bool = True,
    scale: float | None = None,
) -> torch.Tensor:
    """Eager PyTorch attention in float32 (ground truth). Same signature as flash_attention."""
    from .flash_attention.reference import attention_reference as _attention_reference

    return _attention_reference(q, k, v, causal=causal, scale=scale)


def benchmark_attention(
    device: str | torch.device | None = None,
    seq_lens: Iterable[int] = (256, 512, 1024),
    batch: int = 4,
    heads: int = 8,
    head_dim: int = 64,
    dtype: torch.dtype | str | None = None,
    backends: Iterable[str] | None = None,
    repeats: int = 10,
    warmup: int = 2,
    causal: bool = True,
    seed: int = 0,
) -> list[dict]:
    """Time forward+backward of "eager", "sdpa", "compile" and "triton" attention.

    Returns rows {backend, seq_len, ms_fwd_bwd, tokens_per_s, tflops, max_abs_err_vs_reference,
    error}; never prints. Details in ``deconstruct.kernels.benchmark``.
    """
    from .benchmark import benchmark_attention as _benchmark_attention

    return _benchmark_attention(
        device=device, seq_lens=seq_lens, batch=batch, heads=heads, head_dim=head_dim, dtype=dtype,
        backends=backends, repeats=repeats, warmup=warmup, causal=causal, seed=seed,
    )  # fmt: skip
