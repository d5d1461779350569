"""The skeleton the block-wise mixers share (``rectified``, ``span_search``): standard attention's projections,
then ``mix(q, k, v)`` over blocks of S tokens (``block`` tokens, default ⌈√T⌉)."""

from __future__ import annotations

import torch

from deconstruct.model import MixerContext

from ._attention import Attention
from ._blocks import default_block
from .attention import AttentionOptions


class BlockwiseAttention(Attention):
    """Projects q, k, v (and the output) as standard attention does; subclasses mix them block by block."""

    def __init__(self, ctx: MixerContext, block: int | None):
        super().__init__(ctx, AttentionOptions())
        self.block = block

    def S(self, T: int) -> int:
        """Tokens per block at length T."""
        return min(self.block or default_block(T), T)

    def forward(self, x: torch.Tensor, qk: torch.Tensor | None = None) -> torch.Tensor:
        q, k, v = self._project(x, None)  # (B, H, T, D)
        return self._output(self.mix(q, k, v))

    def mix(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError
