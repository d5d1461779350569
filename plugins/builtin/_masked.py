"""Softmax attention restricted by a boolean mask: the shared body of ``window`` and ``biformer``.

Both keep the built-in :class:`Attention`'s parameters and projections and only change which keys a query
may see. ``deconstruct.model.attend`` takes no mask (its Triton kernel knows only the causal one), so these
call SDPA with ``attn_mask`` directly: the dense T×T scores are computed, then masked.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._attention import Attention


class MaskedAttention(Attention):
    """Subclasses define :meth:`attn_mask`: True where a query may attend to a key."""

    def attn_mask(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """(T, T) or (B, H, T, T) boolean mask for queries q and keys k, both (B, H, T, D)."""
        raise NotImplementedError

    def backend_for(self, device: torch.device) -> str:
        return "sdpa-dense-mask"

    def forward(self, x: torch.Tensor, qk: torch.Tensor | None = None) -> torch.Tensor:
        # x: (B, T, d); queries/keys always come from x (qk_source "hidden")
        q, k, v = self._project(x, None)  # (B, H, T, D) each
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=self.attn_mask(q, k), scale=self.scale)  # (B, H, T, D)
        return self._output(y)

    @torch.no_grad()
    def attention_weights(self, x: torch.Tensor, qk: torch.Tensor | None = None) -> torch.Tensor:
        """(B, H, T, T): each head's softmax over the keys its mask allows (zero elsewhere), the O(T²) way."""
        q, k, _ = self._project(x, None)
        s = (q @ k.transpose(-1, -2)).float() * self.score_scale
        return s.masked_fill(~self.attn_mask(q, k), float("-inf")).softmax(-1)
