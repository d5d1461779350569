"""Masked (cloze) byte modelling with a bidirectional encoder, as in BERT4Rec (Sun et al. 2019,
arXiv 1904.06690): a fraction ρ of positions is replaced by a [MASK] token (id 256) and the loss is taken on
those positions only. Non-causal: it exercises the non-causal self-attention pattern of each mixer.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from deconstruct.tasks._lm import ByteLM, CorpusOptions

MASK = 256


class ClozeOptions(CorpusOptions):
    mask_rate: float = Field(0.15, gt=0, lt=1, description="fraction ρ of positions masked")

    @property
    def vocab_size(self) -> int:
        return 257  # 256 bytes + [MASK]

    @property
    def causal(self) -> bool:
        return False


class Cloze(ByteLM):
    causal = False
    vocab_size = 257

    def __init__(self, options: ClozeOptions):
        super().__init__(options)
        self.mask_rate = options.mask_rate

    def get_batch(self, split: str, batch_size: int, generator: Any) -> tuple[Any, Any]:
        import torch

        x, _ = super().get_batch(split, batch_size, generator)
        masked = torch.rand(x.shape, generator=generator) < self.mask_rate
        masked[:, 0] |= ~masked.any(dim=1)  # at least one target per sequence
        y = torch.where(masked, x, torch.full_like(x, -100))
        return x.masked_fill(masked, MASK), y

    def metrics(self, val_loss: float) -> dict[str, float]:
        return {}
