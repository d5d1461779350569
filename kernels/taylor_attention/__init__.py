"""Chunked causal linear attention with the second-order Taylor feature map (``form: approximate``, Based).

    reference.py      the mixer's chunked PyTorch form (ground truth)
    triton_kernel.py  forward and backward kernels: walks over the chunks with the per-order states in registers
    autograd.py       TaylorAttentionFunction and the public ``taylor_attention``
"""

from .autograd import SUPPORTED_QK_DIMS, TaylorAttentionFunction, kernel_takes, taylor_attention
from .reference import taylor_attention_reference

__all__ = ["SUPPORTED_QK_DIMS", "TaylorAttentionFunction", "kernel_takes", "taylor_attention",
           "taylor_attention_reference"]
