"""The attention kernel dispatch: every softmax-form mixer calls :func:`attend`.

Backends: ``eager`` (the PyTorch reference, :func:`attention_eager`), ``sdpa`` (torch's fused
scaled_dot_product_attention), ``triton`` (deconstruct.kernels' FlashAttention, CUDA only), ``compile``
(torch.compile of the reference) and ``auto``.

``auto`` is never slower than PyTorch by construction: it resolves to ``sdpa`` on every device. SDPA
already dispatches to FlashAttention / memory-efficient kernels on GPUs, and deconstruct's Triton kernel has
not been measured faster on any device, so ``auto`` never picks it (ask for ``backend: triton`` explicitly;
``deconstruct bench attention`` times both). Mixers whose form SDPA cannot express choose their own path
and say which through ``backend_for(device)`` (shown by ``spec check`` and stored with every run).
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F

from deconstruct._errors import RunError
from deconstruct.kernels import triton_available
from deconstruct.kernels.flash_attention.reference import attention_reference as attention_eager

BACKENDS = ("auto", "eager", "sdpa", "triton", "compile")


def attention_sdpa(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = True, scale: float | None = None
) -> torch.Tensor:
    gqa = k.shape[1] != q.shape[1]
    return F.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=scale, enable_gqa=gqa)


@lru_cache(maxsize=1)
def _compiled():
    return torch.compile(attention_eager, dynamic=True)


def triton_runs_on(device: torch.device) -> bool:
    """True when the Triton kernel can run natively on ``device`` (a CUDA device with triton importable)."""
    return device.type == "cuda" and _triton_imports()


@lru_cache(maxsize=1)
def _triton_imports() -> bool:
    try:
        return bool(triton_available())
    except Exception:
        return False


def pick_backend(requested: str, device: torch.device) -> str:
    """The softmax backend used on ``device`` for ``requested``: ``auto`` → ``sdpa`` (see the module
    docstring); an unavailable ``triton`` raises with what to use instead."""
    if requested not in BACKENDS:
        raise ValueError(f"unknown attention backend {requested!r}; expected one of {', '.join(BACKENDS)}")
    if requested == "auto":
        return "sdpa"
    if requested == "triton" and not triton_runs_on(device):
        raise RunError(f"backend 'triton' needs a CUDA device and the triton package (device here: {device}); "
                       "use auto, sdpa or eager")
    return requested


def attend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    causal: bool = True,
    backend: str = "sdpa",
    scale: float | None = None,
) -> torch.Tensor:
    """Softmax attention through the chosen backend. q (B, H, T, D); k, v (B, H_kv, S, D), H_kv | H.

    The causal mask is top-left aligned (query i sees keys j ≤ i), as SDPA's ``is_causal``."""
    if backend in ("sdpa", "auto"):
        return attention_sdpa(q, k, v, causal, scale)
    if backend == "eager":
        return attention_eager(q, k, v, causal, scale)
    if backend == "triton":
        from deconstruct.kernels import flash_attention

        return flash_attention(q, k, v, causal=causal, scale=scale)
    if backend == "compile":
        return _compiled()(q, k, v, causal, scale)
    raise ValueError(f"unknown attention backend {backend!r}")
