"""nn.Module of the ``sinks`` mixer (see ``sinks.py``). Standard attention plus, per head, a sink logit b_h
(``sink: logit``: 4·d² + h parameters) or a sink key and value (``sink: token``: 4·d² + 2·d). One extra key
column is appended: its score is b_h (logit: a zero key plus an additive bias) or q·k_h/√d_h (token), its
value 0 (logit) or v_h (token); SDPA runs with a float mask that is −∞ above the diagonal when causal."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from deconstruct.model import MixerContext

from ._attention import Attention
from .attention import AttentionOptions


class SinkAttention(Attention):
    """Softmax attention over [the visible tokens, one learnable sink]."""

    def __init__(self, ctx: MixerContext, options):
        super().__init__(ctx, AttentionOptions())
        self.sink = options.sink
        if self.sink == "logit":
            self.sink_logit = nn.Parameter(torch.full((self.H,), float(options.init_logit)))
        else:
            self.sink_key = nn.Parameter(torch.randn(self.H, self.D) * 0.02)
            self.sink_value = nn.Parameter(torch.randn(self.H, self.D) * 0.02)

    def _extended(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor):
        """k, v with the sink column appended (B, H, T + 1, D), and the (H, T, T + 1) float mask."""
        B, H, T, D = q.shape
        if self.sink == "logit":
            k_s = torch.zeros(B, H, 1, D, dtype=k.dtype, device=k.device)
            v_s = torch.zeros_like(k_s)
            bias = self.sink_logit.to(q.dtype).view(H, 1, 1).expand(H, T, 1)
        else:
            k_s = self.sink_key.to(k.dtype).view(1, H, 1, D).expand(B, -1, -1, -1)
            v_s = self.sink_value.to(v.dtype).view(1, H, 1, D).expand(B, -1, -1, -1)
            bias = torch.zeros(H, T, 1, dtype=q.dtype, device=q.device)
        visible = torch.zeros(T, T, dtype=q.dtype, device=q.device)
        if self.causal:
            visible = visible.masked_fill(~torch.ones(T, T, dtype=torch.bool, device=q.device).tril(), float("-inf"))
        mask = torch.cat([visible.expand(H, T, T), bias], -1)  # (H, T, T + 1)
        return torch.cat([k, k_s], 2), torch.cat([v, v_s], 2), mask

    def forward(self, x: torch.Tensor, qk: torch.Tensor | None = None) -> torch.Tensor:
        q, k, v = self._project(x, None)  # (B, H, T, D)
        k, v, mask = self._extended(q, k, v)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self.scale)  # (B, H, T, D)
        return self._output(y)

    @torch.no_grad()
    def attention_weights(self, x: torch.Tensor, qk: torch.Tensor | None = None) -> torch.Tensor:
        """(B, H, T, T): the weights on the real tokens (rows sum to 1 − the sink's share)."""
        q, k, v = self._project(x, None)
        T = q.shape[2]
        k, v, mask = self._extended(q, k, v)
        s = (q @ k.transpose(-1, -2)).float() * self.score_scale + mask.float()
        return s.softmax(-1)[..., :T]

    def sink_share(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H, T): the mass each query puts on the sink."""
        return 1 - self.attention_weights(x).sum(-1)

    def flops_per_token(self, seq_len: int) -> int:
        """Standard attention's count with one more key per query."""
        T = seq_len
        span = (T + 1) / 2 if self.causal else T
        params = sum(p.numel() for p in self.parameters())
        return int(2 * params + 2 * (span + 1) * self.H * 2 * self.D)
