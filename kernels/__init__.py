"""Fused GPU kernels for attention, shipped as ``deconstruct.kernels``.

One folder per kernel (as in flash-linear-attention): the Triton kernel, its autograd wrapper
and a pure-PyTorch reference side by side.

    flash_attention/        causal / non-causal FlashAttention-2 with GQA
    elementwise_attention/  fused sigmoid / ReLU attention (no normaliser), causal / non-causal, GQA
    differential_attention/ DiffAttn's two softmax maps in one pass over K/V (forward; backward via flash)
    taylor_attention/       chunked causal linear attention, Based's 2nd-order Taylor map (form: approximate)
    benchmark.py       eager vs SDPA vs torch.compile vs Triton timings

This package is the one way to load the kernels (``deconstruct.kernels`` is installed with deconstruct;
nothing loads the folder by path). Importing it needs torch only: Triton is imported on the first kernel
call, so a missing or broken Triton surfaces as a RuntimeError there. The public functions are imported
here eagerly, so ``deconstruct.kernels.flash_attention`` is always the function (a lazily imported
subpackage of the same name would replace it).
"""

from __future__ import annotations

from ._env import interpreting
from .differential_attention import differential_attention, differential_attention_reference
from .elementwise_attention import elementwise_attention, elementwise_attention_reference
from .flash_attention import attention_reference, flash_attention
from .taylor_attention import taylor_attention, taylor_attention_reference

__all__ = [
    "attention_reference", "benchmark_attention", "differential_attention", "differential_attention_reference",
    "elementwise_attention", "elementwise_attention_reference",
    "flash_attention", "interpreting", "taylor_attention", "taylor_attention_reference", "triton_available",
]


def triton_available() -> bool:
    """True when the Triton kernels can run here.

    That is: triton imports and either a CUDA device is present, or TRITON_INTERPRET=1 is set
    (kernels then run, slowly, on the CPU through Triton's interpreter).
    """
    try:
        import triton  # noqa: F401
    except Exception:
        return False
    if interpreting():
        return True
    import torch

    return torch.cuda.is_available()


def benchmark_attention(*args, **kwargs) -> list[dict]:
    """Time forward+backward of "eager", "sdpa", "compile" and "triton" attention.

    Returns rows {backend, seq_len, ms_fwd_bwd, tokens_per_s, tflops, max_abs_err_vs_reference,
    error}; never prints. Arguments and details in ``deconstruct.kernels.benchmark``.
    """
    from .benchmark import benchmark_attention as _benchmark_attention

    return _benchmark_attention(*args, **kwargs)
