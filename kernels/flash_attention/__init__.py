"""Fused (flash) attention: Triton kernels, their autograd wrapper and the PyTorch reference.

    reference.py      plain PyTorch eager attention (ground truth)
    triton_kernel.py  @triton.jit forward / backward kernels and their launchers
    autograd.py       FlashAttentionFunction and the public ``flash_attention``

Importing this package needs only torch; Triton is imported on the first kernel call.
"""

from .autograd import FlashAttentionFunction, flash_attention
from .reference import attention_reference

__all__ = ["FlashAttentionFunction", "attention_reference", "flash_attention"]
