"""nn.Module of the ``window`` mixer (see ``window.py``; Hassani et al. 2023 NAT, Hassani & Shi 2022 DiNAT).

Standard multi-head attention (the ``attention`` mixer's ``qkv`` / ``out_proj``, same parameters) with a
boolean window mask. :func:`deconstruct.model.attend` takes no mask (its Triton kernel knows only the causal
one), so this calls ``torch.nn.functional.scaled_dot_product_attention`` directly with ``attn_mask``; the
mask is built once per (T, device) and cached. SDPA still computes the dense T×T scores, so this is the
reference for the window's *result*, not its O(T·w) cost; ``flops_per_token`` counts the window's cost.
"""

from __future__ import annotations

import torch

from deconstruct.model import MixerContext

from ._masked import MaskedAttention
from .attention import AttentionOptions


def window_mask(T: int, size: int, dilation: int, causal: bool, device=None) -> torch.Tensor:
    """(T, T) bool, True where query i may attend to key j.

    causal: 0 ≤ i − j ≤ (w − 1)·δ and δ | (i − j); non-causal: |i − j| ≤ ⌊w/2⌋·δ and δ | (i − j).
    """
    i = torch.arange(T, device=device).unsqueeze(1)
    j = torch.arange(T, device=device).unsqueeze(0)
    rel = i - j  # (T, T): how far back key j lies
    on_stride = rel.remainder(dilation) == 0
    if causal:
        return on_stride & (rel >= 0) & (rel <= (size - 1) * dilation)
    return on_stride & (rel.abs() <= (size // 2) * dilation)


def mean_span(T: int, size: int, dilation: int, causal: bool) -> float:
    """Mean number of keys a query sees over positions 0 … T − 1 (the window clipped at the edges)."""
    if causal:
        return sum(min(size, i // dilation + 1) for i in range(T)) / T
    r = size // 2
    return sum(min(r, i // dilation) + min(r, (T - 1 - i) // dilation) + 1 for i in range(T)) / T


class WindowAttention(MaskedAttention):
    """Softmax attention restricted to a (dilated) window of keys around each query."""

    def __init__(self, ctx: MixerContext, options):
        super().__init__(ctx, AttentionOptions())
        self.size, self.dilation = options.size, options.dilation
        self._masks: dict[tuple[int, str], torch.Tensor] = {}  # (T, device) → (T, T) mask; not state

    def mask(self, T: int, device: torch.device) -> torch.Tensor:
        key = (T, str(device))
        m = self._masks.get(key)
        if m is None:
            if len(self._masks) >= 8:
                self._masks.clear()
            m = self._masks[key] = window_mask(T, self.size, self.dilation, self.causal, device)
        return m

    def attn_mask(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        return self.mask(q.shape[-2], q.device)  # (T, T), broadcast over B and H

    def flops_per_token(self, seq_len: int) -> int:
        """2·params + 2·span·H·(D + D), span the mean window size clipped at the edges (≤ min(w, T) keys,
        or ≤ 2⌊w/2⌋ + 1 non-causal) — the windowed cost, not the dense masked SDPA that computes it here."""
        span = mean_span(seq_len, self.size, self.dilation, self.causal)
        params = sum(p.numel() for p in self.parameters())
        return int(2 * params + 2 * span * self.H * 2 * self.D)
