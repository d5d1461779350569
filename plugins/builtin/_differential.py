"""nn.Module of the ``differential`` mixer (see ``differential.py`` for the options and the papers).

Shapes: B batch, T tokens, H signal (differential) heads, G = H / r noise heads, D = d_h = d / h the width
of one query/key half; values are D_v wide per signal head (2·D for DiffAttn).

Parameters: ``qkv`` is the fused input projection with rows [Q_1 (H·D) | Q_2 (G·D) | K_1 (H·D) | K_2 (G·D) |
V (H·D_v)]; ``lambda_q1, lambda_k1, lambda_q2, lambda_k2`` (D each) give λ; ``subln`` is the RMSNorm over a
head's D_v channels (one gain shared by the heads); ``out_proj`` is W_O (H·D_v → d).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from deconstruct.kernels.flash_attention.autograd import SUPPORTED_HEAD_DIMS as TRITON_HEAD_DIMS
from deconstruct.model import MixerContext, RMSNorm, Rotary, attend, pick_backend


def lambda_init(layer_index: int) -> float:
    """λ_init = 0.8 − 0.6·exp(−0.3·l) for the 0-indexed layer l (Ye et al. 2024, §2.1)."""
    return 0.8 - 0.6 * math.exp(-0.3 * layer_index)


class DifferentialAttention(nn.Module):
    """Differential attention with r signal heads per noise head (r = 1: DiffAttn; r > 1: GDA).

    Both softmax maps go through :func:`deconstruct.model.attend` (never materialised):
    head_h = A_1^h·V_h − λ·A_2^{g(h)}·V_h with g(h) = h // r. The noise term of a group is one ``attend``
    call whose value is the r signal heads' values side by side, (B, G, T, r·D_v), since
    A_2·[V_1 | … | V_r] = [A_2·V_1 | … | A_2·V_r].
    """

    qk_source = "hidden"

    def __init__(self, ctx: MixerContext, options):
        super().__init__()
        d = ctx.d_model
        self.d, self.D = d, ctx.head_dim
        self.H, self.G = options.signal_heads(ctx), options.noise_heads(ctx)
        self.r = options.signal_ratio
        self.Dv = options.value_width(ctx)
        self.causal, self.backend = ctx.causal, ctx.backend
        self.lambda_init = lambda_init(ctx.layer_index)

        D, H, G, Dv = self.D, self.H, self.G, self.Dv
        self.rows = (H * D, G * D, H * D, G * D, H * Dv)  # Q_1, Q_2, K_1, K_2, V
        self.qkv = nn.Linear(d, sum(self.rows), bias=ctx.bias)
        self.out_proj = nn.Linear(H * Dv, d, bias=ctx.bias)
        self.lambda_q1 = nn.Parameter(torch.empty(D))
        self.lambda_k1 = nn.Parameter(torch.empty(D))
        self.lambda_q2 = nn.Parameter(torch.empty(D))
        self.lambda_k2 = nn.Parameter(torch.empty(D))
        self.subln = RMSNorm(Dv, eps=1e-5)
        self.rotary = Rotary(D, ctx.max_seq_len) if ctx.positions == "rope" else None
        self.init_weights()

    def init_weights(self) -> None:
        """λ vectors ~ N(0, 0.1) (called again by the Transformer after its own Linear init)."""
        for p in (self.lambda_q1, self.lambda_k1, self.lambda_q2, self.lambda_k2):
            nn.init.normal_(p, mean=0.0, std=0.1)

    # -- pieces -----------------------------------------------------------------------------------------------
    def lam(self) -> torch.Tensor:
        """λ = exp(λ_q1·λ_k1) − exp(λ_q2·λ_k2) + λ_init, a scalar shared by the layer's heads."""
        dt = torch.promote_types(self.lambda_q1.dtype, torch.float32)  # at least float32 for the exp
        l1 = torch.exp(torch.dot(self.lambda_q1.to(dt), self.lambda_k1.to(dt)))
        l2 = torch.exp(torch.dot(self.lambda_q2.to(dt), self.lambda_k2.to(dt)))
        return (l1 - l2 + self.lambda_init).to(self.lambda_q1.dtype)

    def _project(self, x: torch.Tensor, qk: torch.Tensor | None):
        """x (B, T, d) → q1, k1 (B, H, T, D); q2, k2 (B, G, T, D); v (B, H, T, D_v).

        With ``qk`` (another stream, (B or 1, T, d)) queries/keys come from it and values from x."""
        B, T, _ = x.shape
        D, H, G = self.D, self.H, self.G
        if qk is None:
            q1, q2, k1, k2, v = self.qkv(x).split(self.rows, dim=-1)
            Bs = B
        else:
            n_qk = sum(self.rows[:4])
            W, b = self.qkv.weight, self.qkv.bias
            q1, q2, k1, k2 = F.linear(qk, W[:n_qk], None if b is None else b[:n_qk]).split(self.rows[:4], dim=-1)
            v = F.linear(x, W[n_qk:], None if b is None else b[n_qk:])
            Bs = qk.shape[0]

        def heads(t: torch.Tensor, n: int, width: int, batch: int) -> torch.Tensor:
            return t.reshape(batch, T, n, width).transpose(1, 2)  # (B, n, T, width)

        q1, k1 = heads(q1, H, D, Bs), heads(k1, H, D, Bs)  # (B, H, T, D)
        q2, k2 = heads(q2, G, D, Bs), heads(k2, G, D, Bs)  # (B, G, T, D)
        v = heads(v, H, self.Dv, B)  # (B, H, T, D_v)
        if self.rotary is not None:
            q1, k1, q2, k2 = (self.rotary(t) for t in (q1, k1, q2, k2))
        if Bs != B:  # a stream of batch 1 serves the whole batch
            q1, k1, q2, k2 = (t.expand(B, -1, -1, -1) for t in (q1, k1, q2, k2))
        return q1, k1, q2, k2, v

    def _output(self, y: torch.Tensor) -> torch.Tensor:
        """y (B, H, T, D_v) = (A_1 − λA_2)·V → RMSNorm per head · (1 − λ_init) → concat → W_O → (B, T, d)."""
        B, H, T, _ = y.shape
        y = self.subln(y) * (1.0 - self.lambda_init)
        y = y.transpose(1, 2).reshape(B, T, H * self.Dv)  # concat heads
        return self.out_proj(y)

    # -- forward ----------------------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, qk: torch.Tensor | None = None) -> torch.Tensor:
        q1, k1, q2, k2, v = self._project(x, qk)
        B, H, T, D2 = v.shape
        G, r = self.G, self.r
        backend = self.backend_for(q1.device)
        if backend == "triton-fused":  # r = 1: both maps in one pass over k/v
            from deconstruct.kernels import differential_attention

            return self._output(differential_attention(q1, k1, q2, k2, v, self.lam(), causal=self.causal))
        y1 = attend(q1, k1, v, causal=self.causal, backend=backend)  # (B, H, T, D_v) = A_1·V
        # group g's r values side by side: (B, H, T, D_v) → (B, G, T, r·D_v)
        vg = v if r == 1 else v.reshape(B, G, r, T, D2).transpose(2, 3).reshape(B, G, T, r * D2)
        y2 = attend(q2, k2, vg, causal=self.causal, backend=backend)  # (B, G, T, r·D_v) = A_2·[V_1 … V_r]
        if r > 1:  # back to (B, H, T, D_v)
            y2 = y2.reshape(B, G, T, r, D2).transpose(2, 3).reshape(B, H, T, D2)
        y = y1 - self.lam() * y2
        return self._output(y)

    def backend_for(self, device: torch.device) -> str:
        """What computes both maps on ``device``: with ``backend: triton`` and r = 1, the fused kernel
        (kernels/differential_attention, both maps in one pass over K/V); otherwise ``attend``'s backend —
        ``triton`` there runs on SDPA (its kernel wants equal q/k/v widths; values here are D_v wide)."""
        if self.backend == "triton":
            pick_backend("triton", device)  # raises where it cannot run
            if self.r == 1 and self.D in TRITON_HEAD_DIMS and self.Dv in TRITON_HEAD_DIMS and self.Dv >= self.D:
                return "triton-fused"
            return "sdpa"
        return pick_backend(self.backend, device)

    # -- diagnostics ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def maps(self, x: torch.Tensor, qk: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The two softmax maps, computed the O(T²) way: A_1 (B, H, T, T), A_2 (B, G, T, T), and λ."""
        q1, k1, q2, k2, _ = self._project(x, qk)

        def softmax_map(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
            s = q @ k.transpose(-1, -2)  # (B, n, T, T)
            s = s.to(torch.promote_types(s.dtype, torch.float32)) / math.sqrt(self.D)
            if self.causal:
                T = s.shape[-1]
                s = s.masked_fill(~torch.ones(T, T, dtype=torch.bool, device=s.device).tril(), float("-inf"))
            return s.softmax(-1)

        return softmax_map(q1, k1), softmax_map(q2, k2), self.lam()

    @torch.no_grad()
    def attention_weights(self, x: torch.Tensor, qk: torch.Tensor | None = None) -> torch.Tensor:
        """The differential mixing matrix A_1 − λ·A_2 of each signal head, (B, H, T, T).

        forward(x) equals ``_output(attention_weights(x) @ V)``; rows sum to 1 − λ and may be negative."""
        a1, a2, lam = self.maps(x, qk)
        return a1 - lam.to(a1.dtype) * a2.repeat_interleave(self.r, dim=1)

    # -- accounting -------------------------------------------------------------------------------------------
    def flops_per_token(self, seq_len: int) -> int:
        """Forward FLOPs per token: 2 × the projection weights, plus per token, with span the mean number of
        keys a query sees ((T+1)/2 causal, T otherwise): 2·span·D for each of the H + G score maps,
        2·span·D_v for A_1·V and again for A_2·V per signal head, and ~6·D_v per head for λ-subtraction,
        RMSNorm and the (1 − λ_init) scale."""
        weights = self.qkv.weight.numel() + self.out_proj.weight.numel()
        H, G, D, T = self.H, self.G, self.D, seq_len
        span = (T + 1) / 2 if self.causal else T
        mixing = 2 * span * D * (H + G) + 2 * 2 * span * self.Dv * H + 6 * self.Dv * H
        return int(2 * weights + mixing)
