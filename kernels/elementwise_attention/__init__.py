"""Fused sigmoid / ReLU attention (no softmax normaliser): Triton kernels, autograd wrapper, PyTorch reference.

    reference.py      the ``form: sigmoid | relu`` maths of the attention mixer (ground truth)
    triton_kernel.py  @triton.jit forward / backward kernels and their launchers
    autograd.py       ElementwiseAttentionFunction and the public ``elementwise_attention``
"""

from .autograd import ElementwiseAttentionFunction, elementwise_attention
from .reference import elementwise_attention_reference

__all__ = ["ElementwiseAttentionFunction", "elementwise_attention", "elementwise_attention_reference"]
