"""nn.Module of the ``combiner`` mixer (see ``combiner.py``; Ren et al. 2021, arXiv 2107.05768).

Standard multi-head attention's projections (``qkv``, ``out_proj``) plus one learned vector per head,
``summary_query`` (H, d_h), that sets the within-region distribution q(j | Ω). Parameters: 4·d² (+ 4·d with
bias) + d. The sequence is cut into R blocks of S tokens (the last zero-padded); nothing T×T is built
in forward: the direct logits are (R, S, S) and the region logits (R, S, R) [fixed] or (R, S, S) [axial].
"""

from __future__ import annotations

import torch
from torch import nn

from deconstruct.model import MixerContext

from ._attention import Attention
from ._blocks import default_block, from_blocks, to_blocks
from .attention import AttentionOptions


class CombinerAttention(Attention):
    """Direct attention to the own block's prefix plus region summaries, under one shared softmax."""

    def __init__(self, ctx: MixerContext, options):
        super().__init__(ctx, AttentionOptions())
        self.factorization, self.region_size = options.factorization, options.region_size
        self.summary_query = nn.Parameter(torch.zeros(self.H, self.D))  # w_h: zero = mean pooling at init

    def block_size(self, T: int) -> int:
        return min(self.region_size or default_block(T), T)

    def forward(self, x: torch.Tensor, qk: torch.Tensor | None = None) -> torch.Tensor:
        q, k, v = self._project(x, None)  # (B, H, T, D) each
        return self._output(self.mix(q, k, v))

    def mix(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """q, k (B, H, T, D), v (B, H, T, E) → (B, H, T, E). Linear in v (attention_weights uses that)."""
        T = q.shape[2]
        S = self.block_size(T)
        qb, kb, vb = to_blocks(q, S), to_blocks(k, S), to_blocks(v, S)  # (B, H, R, S, ·)
        R = qb.shape[2]
        scale = self.score_scale
        tril = torch.ones(S, S, dtype=torch.bool, device=q.device).tril()
        direct = (qb @ kb.transpose(-1, -2)) * scale  # (B, H, R, S, S): own block, key ≤ query
        direct = direct.masked_fill(~tril, float("-inf"))
        a = (kb * self.summary_query[:, None, None, :]).sum(-1) * scale  # (B, H, R, S): logits of q(j | Ω)
        if self.factorization == "fixed":
            valid = (torch.arange(R * S, device=q.device) < T).view(R, S)  # padding is not in any region
            k_reg = kb.masked_fill(~valid[..., None], float("-inf")).amax(-2)  # (B, H, R, D): max-pooled key
            w = a.masked_fill(~valid, float("-inf")).softmax(-1)  # (B, H, R, S): q(j | Ω_r)
            v_reg = (w.unsqueeze(-1) * vb).sum(-2)  # (B, H, R, E)
            summ = torch.einsum("bhrsd,bhpd->bhrsp", qb, k_reg) * scale  # (B, H, R, S, R)
            earlier = torch.arange(R, device=q.device)[None, :] < torch.arange(R, device=q.device)[:, None]
            summ = summ.masked_fill(~earlier[:, None, :], float("-inf"))  # region p < the query's block r
            p = torch.cat([direct, summ], -1).softmax(-1)  # one normaliser over direct keys and regions
            out = p[..., :S] @ vb + torch.einsum("bhrsp,bhpe->bhrse", p[..., S:], v_reg)
        else:  # axial: region (r, c) = column c of rows 0 … r − 1
            k_reg = torch.cummax(kb, dim=2).values  # (B, H, R, S, D): max over rows ≤ r
            k_reg = torch.cat([torch.zeros_like(k_reg[:, :, :1]), k_reg[:, :, :-1]], 2)  # rows < r
            shift = a.amax(2, keepdim=True).detach()  # per column; cancels in the ratio below
            e = torch.exp((a - shift).clamp(min=-80.0))  # (B, H, R, S)
            num = torch.cumsum(e.unsqueeze(-1) * vb, 2) - e.unsqueeze(-1) * vb  # Σ over rows < r
            den = torch.cumsum(e, 2) - e
            v_reg = num / den.clamp_min(1e-30).unsqueeze(-1)  # (B, H, R, S, E)
            summ = (qb @ k_reg.transpose(-1, -2)) * scale  # (B, H, R, S_q, S_c)
            first = torch.arange(R, device=q.device) == 0  # row 0 has no earlier rows
            summ = summ.masked_fill(first[:, None, None], float("-inf"))
            p = torch.cat([direct, summ], -1).softmax(-1)
            out = p[..., :S] @ vb + p[..., S:] @ v_reg
        return from_blocks(out, T)  # (B, H, T, E)

    @torch.no_grad()
    def attention_weights(self, x: torch.Tensor, qk: torch.Tensor | None = None) -> torch.Tensor:
        """(B, H, T, T): the mixing matrix, i.e. ``mix`` applied to one-hot values (it is linear in v)."""
        q, k, _ = self._project(x, None)
        B, H, T, _ = q.shape
        eye = torch.eye(T, dtype=q.dtype, device=q.device).expand(B, H, T, T)
        return self.mix(q, k, eye)

    def flops_per_token(self, seq_len: int) -> int:
        """2·params + per head: 2·2·d_h per scored key (direct span + region keys, mean over positions) plus
        ≈ 5·d_h per token to build the summaries (w·k, the weighted value sum, the max-pool)."""
        T = seq_len
        S = self.block_size(T)
        direct = sum(i % S + 1 for i in range(T)) / T
        if self.factorization == "fixed":
            regions = sum(i // S for i in range(T)) / T
        else:
            regions = sum(S for i in range(T) if i >= S) / T
        params = sum(p.numel() for p in self.parameters())
        return int(2 * params + self.H * (4 * self.D * (direct + regions) + 5 * self.D))
