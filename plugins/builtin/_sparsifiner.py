"""nn.Module of the ``sparsifiner`` mixer (see ``sparsifiner.py``; Wei et al. 2023, arXiv 2303.13755).

Parameters: standard attention's 4·d² (+ 4·d with bias), plus the predictor's channel projections
``pred_q``, ``pred_k`` (r×d_h each, shared by the heads), token-axis ``down`` (S×n) and ``up`` (n×S):
4·d² + 2·r·d_h + 2·S·n.
"""

from __future__ import annotations

import torch
from torch import nn

from deconstruct.model import MixerContext

from ._attention import Attention
from ._blocks import gather_keys, to_blocks
from .attention import AttentionOptions


class SparsifinerAttention(Attention):
    """Exact attention on the own block plus the top-k keys of a low-rank connectivity predictor."""

    def __init__(self, ctx: MixerContext, options):
        super().__init__(ctx, AttentionOptions())
        self.top_k, self.S, self.n = options.top_k, options.block, options.basis
        self.r = options.rank or max(1, self.D // 2)
        self.up_density, self.distill = options.up_density, options.distill
        self.pred_q = nn.Linear(self.D, self.r, bias=False)
        self.pred_k = nn.Linear(self.D, self.r, bias=False)
        self.down = nn.Parameter(torch.randn(self.S, self.n) / self.S**0.5)
        self.up = nn.Parameter(torch.randn(self.n, self.S) / self.n**0.5)
        if self.distill == 0:  # nothing trains the predictor: it stays a random low-rank guess
            for p in (self.pred_q.weight, self.pred_k.weight, self.down, self.up):
                p.requires_grad_(False)
        self.aux_loss: torch.Tensor | None = None

    # -- the connectivity predictor ------------------------------------------------------------------------------
    def sparse_up(self) -> torch.Tensor:
        """(n, S): the up-projection with all but its ``up_density`` largest-magnitude entries zeroed."""
        keep = max(1, round(self.up_density * self.up.numel()))
        threshold = self.up.detach().abs().flatten().topk(keep).values[-1]
        return self.up * (self.up.detach().abs() >= threshold)

    def approx_scores(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """q, k (B, H, T, D) → (B, H, T, T) approximate scores, rank n per block."""
        T = q.shape[2]
        ql, kl = self.pred_q(q), to_blocks(self.pred_k(k), self.S)  # (B, H, T, r), (B, H, R, S, r)
        basis = torch.einsum("bhpsr,sn->bhpnr", kl, self.down)  # (B, H, R, n, r): down along the tokens
        s = torch.einsum("bhtr,bhpnr->bhtpn", ql, basis)  # (B, H, T, R, n)
        approx = torch.einsum("bhtpn,ns->bhtps", s, self.sparse_up())  # (B, H, T, R, S): back to the keys
        return approx.flatten(-2)[..., :T]

    def masks(self, T: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """(direct (T, T), eligible (T, T)): keys of the own block (≤ i when causal), keys the predictor may pick."""
        blk = torch.arange(T, device=device) // self.S
        same = blk[:, None] == blk[None, :]
        visible = torch.ones(T, T, dtype=torch.bool, device=device)
        if self.causal:
            visible = visible.tril()
        return same & visible, ~same & visible

    # -- forward ------------------------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, qk: torch.Tensor | None = None) -> torch.Tensor:
        q, k, v = self._project(x, None)  # (B, H, T, D)
        return self._output(self.mix(q, k, v))

    def mix(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """q, k (B, H, T, D), v (B, H, T, E) → (B, H, T, E); sets ``aux_loss`` when training with distill."""
        B, H, T, D = q.shape
        direct_mask, eligible = self.masks(T, q.device)
        with torch.no_grad():
            approx = self.approx_scores(q, k)
        kk = min(self.top_k, T)
        idx = approx.masked_fill(~eligible, float("-inf")).topk(kk, dim=-1).indices  # (B, H, T, k)
        picked_ok = eligible.expand(B, H, T, T).gather(-1, idx)  # (B, H, T, k): fewer eligible than k → False
        ks, vs = gather_keys(k, idx), gather_keys(v, idx)  # (B, H, T, k, ·)
        sel = (q.unsqueeze(-2) * ks).sum(-1) * self.score_scale  # (B, H, T, k)
        sel = sel.masked_fill(~picked_ok, float("-inf"))
        # the own block, exactly: per block (R, S, S) logits
        S = min(self.S, T)
        qb, kb, vb = to_blocks(q, S), to_blocks(k, S), to_blocks(v, S)  # (B, H, R, S, ·)
        R = qb.shape[2]
        pos = torch.arange(R * S, device=q.device).view(R, S)
        ok = (pos[:, None, :] < T) & (pos[:, :, None] >= pos[:, None, :] if self.causal else True)  # (R, S, S)
        direct = ((qb @ kb.transpose(-1, -2)) * self.score_scale).masked_fill(~ok, float("-inf"))
        direct = direct.reshape(B, H, R * S, S)[:, :, :T]  # (B, H, T, S)
        p = torch.cat([direct, sel], -1).softmax(-1)  # one softmax over the own block and the picked keys
        vown = vb.unsqueeze(3).expand(-1, -1, -1, S, -1, -1).reshape(B, H, R * S, S, -1)[:, :, :T]  # (B, H, T, S, E)
        y = (p[..., :S, None] * vown).sum(-2) + (p[..., S:, None] * vs).sum(-2)
        self.aux_loss = None
        if self.training and self.distill > 0 and torch.is_grad_enabled():
            self.aux_loss = self.distill * self.distill_loss(q.detach(), k.detach(), eligible)
        return y

    def distill_loss(self, q: torch.Tensor, k: torch.Tensor, eligible: torch.Tensor) -> torch.Tensor:
        """KL(dense attention ‖ predictor) over each query's eligible keys, mean over the queries that have
        any (the dense map is the teacher: detached, and renormalised over the eligible keys)."""
        dense = (q @ k.transpose(-1, -2)) * self.score_scale  # (B, H, T, T)
        teacher = dense.masked_fill(~eligible, float("-inf")).softmax(-1)
        student = self.approx_scores(q, k).masked_fill(~eligible, float("-inf")).log_softmax(-1)
        rows = eligible.any(-1)  # (T,)
        if not rows.any():
            return student.sum() * 0.0
        t, s = teacher[..., rows, :], student[..., rows, :]
        kl = torch.where(t > 0, t * (t.clamp_min(1e-30).log() - s), torch.zeros_like(t)).sum(-1)
        return kl.mean()

    @torch.no_grad()
    def attention_weights(self, x: torch.Tensor, qk: torch.Tensor | None = None) -> torch.Tensor:
        """(B, H, T, T): ``mix`` applied to one-hot values (it is linear in v)."""
        q, k, _ = self._project(x, None)
        B, H, T, _ = q.shape
        return self.mix(q, k, torch.eye(T, dtype=q.dtype, device=q.device).expand(B, H, T, T))

    def flops_per_token(self, seq_len: int) -> int:
        """2·params + per head: 2·2·d_h per attended key (own block + k picked) + the predictor:
        4·d_h·r (q, k down-projections), 2·r·n (basis), 2·r·n per scored block, 2·n per scored key."""
        T, S = seq_len, min(self.S, seq_len)
        blk = [i // S for i in range(T)]
        own = sum((i % S + 1) if self.causal else min(S, T - b * S) for i, b in enumerate(blk)) / T
        eligible = sum((b * S) if self.causal else T - min(S, T - b * S) for b in blk) / T
        picked = sum(min(self.top_k, (b * S) if self.causal else T - min(S, T - b * S)) for b in blk) / T
        blocks = eligible / S
        predictor = 4 * self.D * self.r + 2 * self.r * self.n * (1 + blocks) + 2 * self.n * eligible
        params = sum(p.numel() for p in self.parameters())
        return int(2 * params + self.H * (4 * self.D * (own + picked) + predictor))
