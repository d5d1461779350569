"""nn.Module of the ``window`` mixer (see ``window.py``; Hassani et al. 2023 NAT, Hassani & Shi 2022 DiNAT).

Standard multi-head attention (the ``attention`` mixer's ``qkv`` / ``out_proj``, same parameters) restricted
to a (dilated) window of keys. With ``backend: auto`` it runs at the window's cost: blocked on the CPU
(:func:`._blocked.window_attention`), FlexAttention with a block mask on CUDA; any other backend runs the
dense reference, SDPA with the (T, T) ``window_mask`` (see :mod:`._masked`). Masks are cached per (T, device).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from deconstruct.model import MixerContext

from . import _blocked, _flex
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

    pattern = "window"

    def __init__(self, ctx: MixerContext, options):
        super().__init__(ctx, AttentionOptions())
        self.size, self.dilation = options.size, options.dilation
        self._masks: dict[tuple[str, int, str], Any] = {}  # (kind, T, device) → mask; not state

    def _cached(self, kind: str, T: int, device: torch.device, make: Callable[[], Any]) -> Any:
        key = (kind, T, str(device))
        m = self._masks.get(key)
        if m is None:
            if len(self._masks) >= 8:
                self._masks.clear()
            m = self._masks[key] = make()
        return m

    def mask(self, T: int, device: torch.device) -> torch.Tensor:
        return self._cached("dense", T, device, lambda: window_mask(T, self.size, self.dilation, self.causal, device))

    def attn_mask(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        return self.mask(q.shape[-2], q.device)  # (T, T), broadcast over B and H

    def sparse_pays(self, T: int) -> bool:
        """Blocked when the window covers at most half the sequence (W = 128: 1.08× dense at T = 512,
        2.2× at 1024, 5.8× at 2048, fwd+bwd on one CPU core)."""
        return self.size * self.dilation <= T // 2

    def sparse_attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return _blocked.window_attention(q, k, v, self.size, self.dilation, self.causal, self.scale)

    def flex_attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        T = q.shape[-2]
        bm = self._cached("flex", T, q.device,
                          lambda: _flex.window_block_mask(T, self.size, self.dilation, self.causal, q.device))
        return _flex.window_attention(q, k, v, bm, self.scale)

    def flops_per_token(self, seq_len: int) -> int:
        """2·params + 2·span·H·(D + D), span the mean window size clipped at the edges (≤ min(w, T) keys,
        or ≤ 2⌊w/2⌋ + 1 non-causal) — the windowed cost, not the dense masked SDPA that computes it here."""
        span = mean_span(seq_len, self.size, self.dilation, self.causal)
        params = sum(p.numel() for p in self.parameters())
        return int(2 * params + 2 * span * self.H * 2 * self.D)
