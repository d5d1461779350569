"""nn.Module of the ``rectified`` mixer (see ``rectified.py``). Standard attention's parameters only
(4·d², + 4·d with bias). Per query: own block exactly, top_k − 1 gathered blocks exactly, and (with the
switches) the pooled dropped blocks; nothing T×T is built in forward."""

from __future__ import annotations

import math

import torch

from deconstruct.model import MixerContext

from ._blocks import own_and_gathered, to_blocks
from ._blockwise import BlockwiseAttention


class RectifiedBlockSparseAttention(BlockwiseAttention):
    """Block-sparse top-k attention, optionally rectified by IPAR and GAPR."""

    def __init__(self, ctx: MixerContext, options):
        super().__init__(ctx, options.block_size)
        self.top_k, self.ipar, self.gapr = options.top_k, options.ipar, options.gapr

    def mix(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """q, k (B, H, T, D), v (B, H, T, E) → (B, H, T, E). Linear in v."""
        B, H, T, D = q.shape
        S = self.S(T)
        kb, vb = to_blocks(k, S), to_blocks(v, S)  # (B, H, R, S, ·)
        R = kb.shape[2]
        dev = q.device
        pos = torch.arange(R * S, device=dev).view(R, S)
        size = (pos < T).sum(-1).to(q.dtype)  # (R,): tokens per block (the last may be short)
        k_bar = kb.sum(-2) / size[:, None]  # (B, H, R, D): pooled keys
        v_bar = vb.sum(-2) / size[:, None]  # (B, H, R, E)
        blk = torch.arange(T, device=dev) // S  # (T,)
        other = blk[:, None] != torch.arange(R, device=dev)[None, :]  # (T, R)
        eligible = other & (torch.arange(R, device=dev)[None, :] < blk[:, None]) if self.causal else other
        pooled = (q @ k_bar.transpose(-1, -2)) * self.score_scale  # (B, H, T, R): s̄_ip
        n = min(self.top_k - 1, R - 1)
        kept = torch.zeros(B, H, T, R, dtype=torch.bool, device=dev)
        if n > 0:
            idx = pooled.detach().masked_fill(~eligible, float("-inf")).topk(n, dim=-1).indices  # (B, H, T, n)
            kept.scatter_(-1, idx, True)
            kept &= eligible  # fewer than n eligible blocks: the -inf picks are dropped
        else:
            idx = torch.zeros(B, H, T, 0, dtype=torch.long, device=dev)
        dropped = eligible & ~kept  # (B, H, T, R)

        # own block and kept blocks, exactly
        own, v_own, sel, vg = own_and_gathered(q, k, v, S, idx, self.causal, self.score_scale)
        sel = sel.masked_fill(~kept.gather(-1, idx).unsqueeze(-1), float("-inf")).flatten(-2)  # (B, H, T, n·S)

        # one shift for every term, then the three sums
        logits = torch.cat([own, sel], -1)
        log_mass = pooled + torch.log(size)  # log m̂_ip
        shift = logits.amax(-1, keepdim=True)
        if self.ipar or self.gapr:
            shift = torch.maximum(shift, log_mass.masked_fill(~dropped, float("-inf")).amax(-1, keepdim=True))
        shift = shift.detach()
        e = torch.exp(logits - shift)  # (B, H, T, S + n·S)
        num = (e[..., :S, None] * v_own).sum(-2) + (e[..., S:, None] * vg.flatten(3, 4)).sum(-2)
        z_kept = e.sum(-1, keepdim=True)
        m = torch.exp(log_mass - shift).masked_fill(~dropped, 0.0)  # (B, H, T, R): pooled dropped mass
        z_all = z_kept + m.sum(-1, keepdim=True)
        y = num / (z_all if self.ipar else z_kept)
        if self.gapr:
            y = y + (m @ v_bar) / z_all
        return y

    @torch.no_grad()
    def attention_weights(self, x: torch.Tensor, qk: torch.Tensor | None = None) -> torch.Tensor:
        """(B, H, T, T): ``mix`` applied to one-hot values (GAPR spreads a dropped block's weight evenly
        over its tokens, as the pooled value v̄_p does)."""
        q, k, _ = self._project(x, None)
        B, H, T, _ = q.shape
        return self.mix(q, k, torch.eye(T, dtype=q.dtype, device=q.device).expand(B, H, T, T))

    def flops_per_token(self, seq_len: int) -> int:
        """2·params + per head: 2·d_h per block score (R blocks), 2·2·d_h per attended key (own block +
        top_k − 1 blocks of S), 2·d_h per token for the pooled keys and values, 2·E per dropped block (GAPR)."""
        T = seq_len
        S = self.S(T)
        R = math.ceil(T / S)
        blocks = [i // S for i in range(T)]
        own = sum((i % S + 1) if self.causal else S for i in range(T)) / T
        elig = [(b if self.causal else R - 1) for b in blocks]
        picked = sum(min(self.top_k - 1, e) for e in elig) / T * S
        dropped = sum(max(0, e - (self.top_k - 1)) for e in elig) / T if self.gapr else 0
        params = sum(p.numel() for p in self.parameters())
        return int(2 * params + self.H * (2 * self.D * R + 4 * self.D * (own + picked) + 2 * self.D + 2 * self.D * dropped))
