"""Differential attention (DiffAttn, r = 1) with both softmax maps in one pass over K/V.

    reference.py      the two maps through the eager softmax reference, y = A_1·V − λ·A_2·V
    triton_kernel.py  the fused forward (two online softmaxes sharing the V loads)
    autograd.py       DifferentialAttentionFunction (backward through the FlashAttention kernels)
"""

from .autograd import DifferentialAttentionFunction, differential_attention
from .reference import differential_attention_reference

__all__ = ["DifferentialAttentionFunction", "differential_attention", "differential_attention_reference"]
