"""nn.Module of the ``moh`` mixer (see ``moh.py`` for the options; Jin et al. 2024, arXiv 2410.11842).

Standard multi-head attention (the ``attention`` mixer with default options: the same ``qkv`` and
``out_proj`` parameters, created in the same order) plus a router with three bias-free (unless the model
has biases) maps of x: W_s (d → h_s), W_r (d → h − h_s) and W_h (d → 2). Every head is computed (densely,
through :func:`deconstruct.model.attend`); the gates then scale each head's output per token, before W_O.
Shared heads are heads 0 … h_s − 1, routed heads h_s … h − 1.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from deconstruct.model import MixerContext, attend

from ._attention import Attention
from .attention import AttentionOptions


class Routing(NamedTuple):
    """One forward's routing, every tensor per token: (B, T, ·)."""

    shared: torch.Tensor  # (B, T, h_s)  softmax(W_s·x)·h_s, before α1
    routed: torch.Tensor  # (B, T, h−h_s) top-k renormalised ×k (others 0), before α2
    alpha: torch.Tensor  # (B, T, 2)  [α1, α2] = 2·softmax(W_h·x)
    probs: torch.Tensor  # (B, T, h−h_s) softmax(W_r·x) before top-k (P_i is its mean)
    selected: torch.Tensor  # (B, T, h−h_s) bool: the kept heads (f_i is its mean)

    def gates(self) -> torch.Tensor:
        """(B, T, h): α1·shared gates followed by α2·routed gates."""
        return torch.cat((self.alpha[..., :1] * self.shared, self.alpha[..., 1:] * self.routed), dim=-1)


class MoHAttention(Attention):
    """Mixture-of-Head attention: out = W_O·concat_i(g_i·head_i) with per-token head gates g_i."""

    def __init__(self, ctx: MixerContext, options):
        super().__init__(ctx, AttentionOptions())
        self.uniform = options.uniform_gates
        self.h_shared = options.shared_heads
        self.h_routed = options.routed(ctx.heads)
        self.top_k = options.k(ctx.heads)
        self.balance_coef = options.balance_coef
        self.aux_loss: torch.Tensor | None = None
        d, bias = ctx.d_model, ctx.bias
        router = not self.uniform  # uniform: every gate is 1, no router at all (standard attention, same parameters)
        self.w_routed: nn.Linear | None = nn.Linear(d, self.h_routed, bias=bias) if router else None  # W_r
        self.w_shared: nn.Linear | None = nn.Linear(d, self.h_shared, bias=bias) if router and self.h_shared else None  # W_s
        self.w_mix: nn.Linear | None = nn.Linear(d, 2, bias=bias) if router and self.h_shared else None  # W_h

    def route(self, x: torch.Tensor) -> Routing:
        """x (B, T, d) → the gates of every head for every token (router maps in x's dtype, softmax in fp32)."""
        B, T, _ = x.shape
        dt = torch.promote_types(x.dtype, torch.float32)  # fp32 at least (bf16 autocast), fp64 kept
        assert self.w_routed is not None, "route() is for gated heads (uniform_gates has no router)"
        probs = self.w_routed(x).to(dt).softmax(-1)  # (B, T, h_r)
        top, idx = probs.topk(self.top_k, dim=-1)  # (B, T, k)
        top = top / top.sum(-1, keepdim=True) * self.top_k  # renormalise, ×k
        routed = torch.zeros_like(probs).scatter(-1, idx, top)
        selected = torch.zeros_like(probs, dtype=torch.bool).scatter(-1, idx, True)
        if self.w_shared is not None and self.w_mix is not None:  # h_s > 0 shared heads
            shared = self.w_shared(x).to(dt).softmax(-1) * self.h_shared  # (B, T, h_s)
            alpha = 2 * self.w_mix(x).to(dt).softmax(-1)  # (B, T, 2)
        else:  # no shared heads: the routed gates as they are
            shared = probs.new_zeros(B, T, 0)
            alpha = probs.new_ones(B, T, 2)
        return Routing(shared, routed, alpha, probs, selected)

    def balance_loss(self, r: Routing) -> torch.Tensor:
        """(h − h_s)·Σ_i P_i·f_i over the routed heads, P_i and f_i averaged over every token of the batch."""
        P = r.probs.mean(dim=(0, 1))  # (h_r,) mean routed probability
        f = r.selected.to(P.dtype).mean(dim=(0, 1))  # (h_r,) fraction of tokens that keep head i (no gradient)
        return self.h_routed * (P * f).sum()

    def forward(self, x: torch.Tensor, qk: torch.Tensor | None = None) -> torch.Tensor:
        # x: (B, T, d); queries/keys always come from x (qk_source "hidden")
        self.aux_loss = None
        q, k, v = self._project(x, None)  # (B, H, T, D) each
        y = attend(q, k, v, causal=self.causal, backend=self.softmax_backend(q.device), scale=self.scale)  # (B, H, T, D)
        if self.uniform:
            return self._output(y)
        r = self.route(x)
        g = r.gates().to(y.dtype).transpose(1, 2).unsqueeze(-1)  # (B, H, T, 1)
        if self.training and self.balance_coef > 0:
            self.aux_loss = self.balance_coef * self.balance_loss(r)
        return self._output(y * g)

    # attention_weights (B, H, T, T) is inherited: the ungated softmax map of every head. A token's row of
    # head i is scaled by its gate g_i (route(x).gates()) before W_O.

    def flops_per_token(self, seq_len: int) -> int:
        """Standard attention's count (2·params, router included, + 2·span·H·2·D mixing) + H·D for the gating.

        Every head is computed here, so this is the dense cost; the paper's saving from skipping inactive
        heads (1 − (h_s + k)/h of the mixing) needs a kernel that skips them.
        """
        extra = 0 if self.uniform else self.H * self.D
        return super().flops_per_token(seq_len) + extra
