"""nn.Module of the ``attention`` mixer (see ``attention.py`` for the options and the papers).

With default options this is standard causal multi-head attention, exactly as before the principle axes
were added (same parameters, created in the same order, same calls). Each axis changes one piece:

    source s   = x (hidden) | E (static) | a fixed stream (random, fixed_text)     ← qk_source (the Transformer)
    q, k       = s·W_Q, s·W_K (separate) | s·W_Q, s·W_Q (symmetric)               ← qk
               | s·W_QK^h, s (collapsed) | frozen random W_Q, W_K (frozen)
    v, output  = x·W_V … ·W_O (separate) | x … ·W_VO (collapsed) | x … (identity) ← vo
    mixing     = softmax (attend: sdpa/eager/triton) | Taylor linear | prefix softmax | sigmoid | relu ← form

Parameters: ``qkv`` is the fused trainable input projection, rows [W_Q | W_K | W_V] for whichever of them
exist and train; ``qk_frozen`` holds W_Q, W_K of ``qk: frozen`` (requires_grad False); ``out_proj`` is W_O,
or the stacked per-head W_VO of ``vo: collapsed``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from deconstruct.kernels.flash_attention.autograd import SUPPORTED_HEAD_DIMS as TRITON_HEAD_DIMS
from deconstruct.kernels.taylor_attention import kernel_takes as taylor_kernel_takes
from deconstruct.model import MixerContext, Rotary, attend, pick_backend, triton_runs_on

from . import _forms
from .attention import DEFAULT_CHUNK

#: the path each non-softmax form takes (plain PyTorch in :mod:`._forms`)
FORM_BACKENDS = {"approximate": "chunked-taylor", "non_approximate": "chunked-prefix",
                 "sigmoid": "eager", "relu": "eager"}
#: ``form: approximate`` through the chunked Triton kernel (kernels/taylor_attention), see ``backend_for``
TAYLOR_KERNEL = "triton-taylor"


class Attention(nn.Module):
    """Multi-head attention with every design principle a switch.

    Standard: Q, K, V = x·W_{Q,K,V}; A = softmax(QKᵀ/√d_h + causal mask); out = concat_h(A_h·V_h)·W_O.

    - ``qk: symmetric`` — W_K = W_Q (one d×(h·d_h) matrix): scores x_i·W_Q·W_Qᵀ·x_jᵀ are symmetric.
    - ``qk: collapsed`` — one W_QK^h ∈ R^{d×d} per head; score x_i·W_QK^h·x_jᵀ/√d_h (the 1/√d_h keeps it equal
      to standard when W_QK^h = W_Q^h·W_K^hᵀ). Run through ``attend`` as q_h = x·W_QK^h (width d) against
      one shared key k = x. Parameters h·d² instead of 2·d² — a saving only with one head.
    - ``qk: frozen`` — W_Q, W_K drawn at init like standard and never trained (Dong et al. 2025).
    - ``vo: collapsed`` — W_VO^h = W_V^h·W_O^h ∈ R^{d×d} per head: each head mixes the whole input x and
      out = Σ_h (A_h·x)·W_VO^h, computed as ``attend`` with the value x shared by all heads followed by one
      (h·d → d) projection. Parameters h·d² instead of 2·d² (again a saving only with one head). Initialised
      as an output projection (N(0, init_std/√(2L)), the GPT-2 residual scaling).
    - ``vo: identity`` — W_V = W_O = I: head h mixes its own d_h channels of x and the heads are
      concatenated back, so each output channel is a convex combination (softmax) of that channel over the
      visible positions. No parameters.
    - ``form`` — softmax goes through :func:`deconstruct.model.attend` (SDPA on the CPU); the others through
      :mod:`deconstruct.builtin._forms` (chunked linear-time Taylor attention, chunked prefix softmax,
      length-normalised sigmoid / ReLU), or their Triton kernels where ``backend_for`` picks them.

    When queries/keys come from another stream (``qk`` is not None: static embeddings or a fixed stream of
    batch 1), Q and K are projected from it and V from ``x``, with the same weights.
    """

    def __init__(self, ctx: MixerContext, options):
        super().__init__()
        d, H = ctx.d_model, ctx.heads
        self.d, self.H, self.D = d, H, ctx.head_dim
        self.Hkv = options.kv_heads or H
        self.causal, self.backend = ctx.causal, ctx.backend
        self.form, self.qk_mode, self.vo_mode = options.form, options.qk, options.vo
        self.normalization = options.normalization
        self.chunk_size = options.chunk_size or DEFAULT_CHUNK.get(self.form, 64)
        # read by the Transformer: where queries/keys come from, and how the fixed streams are made
        self.qk_source = options.qk_source
        self.random_std, self.detach_stream = options.random_std, options.detach_stream
        self.static_positions = options.static_positions

        # widths: per-head query/key width, per-head value width, rows of each projection
        collapsed_qk = self.qk_mode == "collapsed"
        self.Dqk = d if collapsed_qk else (options.qk_dim or self.D)
        self.Dv = d if self.vo_mode == "collapsed" else self.D
        self.q_rows = H * self.Dqk
        self.k_rows = 0 if self.qk_mode in ("symmetric", "collapsed") else self.Hkv * self.Dqk
        self.v_rows = self.Hkv * self.D if self.vo_mode == "separate" else 0
        # scores are q·k/√(head width of the bilinear form): d_h for collapsed (W_QK = W_Q·W_Kᵀ), else Dqk.
        # None = attend's default 1/√(q's last dim), kept for the standard path so it stays bit-identical.
        score_dim = self.D if collapsed_qk else self.Dqk
        self.scale = None if score_dim == self.Dqk else 1.0 / math.sqrt(score_dim)
        self.score_scale = 1.0 / math.sqrt(score_dim)

        frozen = self.qk_mode == "frozen"
        trainable_rows = (0 if frozen else self.q_rows + self.k_rows) + self.v_rows
        self.qkv = nn.Linear(d, trainable_rows, bias=ctx.bias) if trainable_rows else None
        self.out_proj: nn.Linear | None = nn.Linear(H * self.Dv, d, bias=ctx.bias) if self.vo_mode != "identity" else None
        # Dong et al. 2025 (frozen): random at init (initialised with the model), never trained
        self.qk_frozen: nn.Linear | None = (
            nn.Linear(d, self.q_rows + self.k_rows, bias=ctx.bias).requires_grad_(False) if frozen else None
        )
        # rotary on queries/keys; non_approximate scores q_j·k_j at one position, which rotation leaves unchanged
        use_rope = ctx.positions == "rope" and self.form != "non_approximate"
        self.rotary = Rotary(self.Dqk, ctx.max_seq_len) if use_rope else None

    # -- projections ------------------------------------------------------------------------------------------
    def _project(self, x: torch.Tensor, qk: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (B, T, d), qk (B or 1, T, d) or None → q (B, H, T, Dqk), k (B, H_k, T, Dqk), v (B, H_v, T, Dv)."""
        B, T, _ = x.shape
        src = x if qk is None else qk
        qk_rows = self.q_rows + self.k_rows
        if self.qk_frozen is not None:
            qk_part = self.qk_frozen(src)
            q_part, k_part = qk_part[..., : self.q_rows], qk_part[..., self.q_rows :]
            v_part = self.qkv(x) if self.qkv is not None else None
        elif qk is None:  # one fused matmul (the standard path), split three ways: one cat in backward
            assert self.qkv is not None  # not frozen: the Q/K rows are trainable, so the fused projection exists
            parts = iter(self.qkv(x).split([r for r in (self.q_rows, self.k_rows, self.v_rows) if r], dim=-1))
            q_part = next(parts)
            k_part = next(parts) if self.k_rows else None
            v_part = next(parts) if self.v_rows else None
        else:  # queries/keys from another stream: the same weight, applied to two inputs
            assert self.qkv is not None
            W, b = self.qkv.weight, self.qkv.bias
            qk_part = F.linear(src, W[:qk_rows], None if b is None else b[:qk_rows])
            q_part, k_part = qk_part[..., : self.q_rows], qk_part[..., self.q_rows :]
            v_part = F.linear(x, W[qk_rows:], None if b is None else b[qk_rows:]) if self.v_rows else None

        Bs = src.shape[0]
        q = q_part.view(Bs, T, self.H, self.Dqk).transpose(1, 2)  # (B_s, H, T, Dqk)
        if self.qk_mode == "collapsed":
            k = src.unsqueeze(1)  # (B_s, 1, T, d): the key is the source itself
        elif self.qk_mode == "symmetric":
            k = q
        else:
            k = k_part.view(Bs, T, self.Hkv, self.Dqk).transpose(1, 2)  # (B_s, H_kv, T, Dqk)

        if self.vo_mode == "separate":
            assert v_part is not None  # separate values always have rows in the fused projection
            v = v_part.view(B, T, self.Hkv, self.D).transpose(1, 2)  # (B, H_kv, T, D)
        elif self.vo_mode == "collapsed":
            v = x.unsqueeze(1)  # (B, 1, T, d): every head mixes the whole input
        else:
            v = x.view(B, T, self.H, self.D).transpose(1, 2)  # (B, H, T, D): head h mixes its channels

        if self.form == "non_approximate":
            q = F.silu(q)  # Xue et al.: q = SiLU(H·W_Q)
        if self.rotary is not None:
            q = self.rotary(q)
            k = q if self.qk_mode == "symmetric" else self.rotary(k)
        if Bs != B:  # a fixed stream (batch 1) serves every sequence of the batch
            q, k = q.expand(B, -1, -1, -1), k.expand(B, -1, -1, -1)
        return q, k, v

    def _output(self, y: torch.Tensor) -> torch.Tensor:
        B, _, T, _ = y.shape
        y = y.transpose(1, 2).reshape(B, T, self.H * self.Dv)  # concat heads
        return y if self.out_proj is None else self.out_proj(y)

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        """(B, H_t, T, ·) → (B, H, T, ·): repeat GQA groups, broadcast a shared head."""
        if t.shape[1] == self.H:
            return t
        if t.shape[1] == 1:
            return t.expand(-1, self.H, -1, -1)
        return t.repeat_interleave(self.H // t.shape[1], dim=1)

    # -- forward ----------------------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, qk: torch.Tensor | None = None) -> torch.Tensor:
        q, k, v = self._project(x, qk)
        if self.form == "softmax":
            if k.shape[1] != v.shape[1]:  # a shared key or value head (collapsed QK / VO)
                k, v = self._heads(k), self._heads(v)
            y = attend(q, k, v, causal=self.causal, backend=self.softmax_backend(q.device), scale=self.scale)
        elif self.form == "approximate" and self.backend_for(q.device) == TAYLOR_KERNEL:
            from deconstruct.kernels import taylor_attention

            y = taylor_attention(q, self._heads(k), self._heads(v), self.normalization)
        elif self.form == "approximate":
            y = _forms.taylor_attention(
                q, self._heads(k), self._heads(v), self.causal, self.normalization, self.chunk_size
            )
        elif self.form == "non_approximate":
            s = (q * self._heads(k)).sum(-1) * self.score_scale  # (B, H, T): one score per token and head
            y = _forms.prefix_softmax(s, self._heads(v), self.causal, self.chunk_size)
        elif self.backend_for(q.device) == "triton":  # sigmoid | relu, fused (kernels/elementwise_attention)
            from deconstruct.kernels import elementwise_attention

            y = elementwise_attention(q, self._heads(k), self._heads(v), self.form, self.causal, self.score_scale)
        else:  # sigmoid | relu
            y = _forms.elementwise_attention(q, self._heads(k), self._heads(v), self.form, self.causal, self.score_scale)
        return self._output(y)

    # -- which kernel runs ---------------------------------------------------------------------------------------
    def softmax_backend(self, device: torch.device) -> str:
        """The ``attend`` backend of the softmax form on ``device``: the requested one resolved by
        :func:`pick_backend` (``auto`` → SDPA), except that ``triton`` falls back to SDPA when the kernel cannot
        take these widths (it wants equal query/key and value head widths in 16/32/64/128)."""
        backend = pick_backend(self.backend, device)
        if backend == "triton" and not (self.Dqk == self.Dv and self.Dqk in TRITON_HEAD_DIMS):
            return "sdpa"
        return backend

    def backend_for(self, device: torch.device) -> str:
        """What computes the mixing on ``device`` (``spec check`` and every run show it).

        ``form: approximate`` with ``auto`` or ``triton`` runs the chunked Triton kernels (``triton-taylor``)
        where Triton runs natively (CUDA), the mixing is causal and the widths fit (d in 16/32/64, D_v in
        16…128): SDPA cannot express the form, so the kernel is the fast path, as FlexAttention is for the
        masked mixers. Elsewhere, and with ``eager``/``sdpa``/``compile``, the PyTorch chunked form."""
        if self.form == "softmax":
            return self.softmax_backend(device)
        if self.form in ("sigmoid", "relu") and self.backend == "triton":  # the fused kernel, only when asked
            pick_backend("triton", device)  # raises where it cannot run
            return "triton" if self.Dqk == self.Dv and self.Dqk in TRITON_HEAD_DIMS else "eager"
        if self.form == "approximate" and self.backend in ("auto", "triton"):
            if self.backend == "triton":
                pick_backend("triton", device)  # raises where it cannot run
            if triton_runs_on(device) and self.causal and taylor_kernel_takes(self.Dqk, self.Dv):
                return TAYLOR_KERNEL
        return FORM_BACKENDS[self.form]

    @torch.no_grad()
    def attention_weights(self, x: torch.Tensor, qk: torch.Tensor | None = None) -> torch.Tensor:
        """The mixing matrix each head applies to its values, (B, H, T, T), computed the O(T²) way.

        forward(x, qk) equals ``_output(attention_weights(x, qk) @ values)`` for every form (the tests check
        it); diagnostics (entropy, sink, head diversity) read it.
        """
        q, k, v = self._project(x, qk)
        k = self._heads(k)
        if self.form == "softmax":
            s = q @ k.transpose(-1, -2)
            s = s.to(torch.promote_types(s.dtype, torch.float32)) * self.score_scale
            if self.causal:
                T = s.shape[-1]
                s = s.masked_fill(~torch.ones(T, T, dtype=torch.bool, device=s.device).tril(), float("-inf"))
            return s.softmax(-1)
        if self.form == "approximate":
            return _forms.taylor_weights(q, k, self.causal, self.normalization)
        if self.form == "non_approximate":
            return _forms.prefix_softmax_weights((q * k).sum(-1) * self.score_scale, self.causal)
        return _forms.elementwise_weights(q, k, self.form, self.causal, self.score_scale)

    # -- accounting -------------------------------------------------------------------------------------------
    def flops_per_token(self, seq_len: int) -> int:
        """Forward FLOPs per token: 2 × every projection weight (frozen ones still compute) + the mixing.

        Mixing per head, with span the mean number of keys a query sees ((T+1)/2 causal, T otherwise):
        softmax, sigmoid, relu: 2·span·(Dqk + Dv) for QKᵀ and A·V;
        approximate: 2·c·(Dqk + E) inside a chunk (c its mean causal span, E = Dv + 1 with the normaliser)
        plus, when there are earlier chunks, 4·Dqk²·E + 2·Dqk² + 4·Dqk·E + E to write and read the state;
        non_approximate: 2·Dqk for the score, 2·c·(Dv + 1) inside a chunk, 4·(Dv + 1) across chunks.
        Q/K projections of a fixed stream are counted per token although they run once per batch, and the
        stream's own pass through the blocks is not counted.
        """
        params = sum(p.numel() for p in self.parameters())
        H, Dqk, Dv, T = self.H, self.Dqk, self.Dv, seq_len
        span = (T + 1) / 2 if self.causal else T
        if self.form in ("softmax", "sigmoid", "relu"):
            mixing = 2 * span * H * (Dqk + Dv)
        else:
            C = max(1, min(self.chunk_size, T))
            chunk_span = (C + 1) / 2
            more_chunks = T > C
            if self.form == "approximate":
                E = Dv + 1  # values plus the normaliser column
                state = 4 * Dqk * Dqk * E + 2 * Dqk * Dqk + 4 * Dqk * E + E  # write + read the per-order states
                if self.causal:
                    mixing = H * (2 * chunk_span * (Dqk + E) + (state if more_chunks else 0))
                else:
                    mixing = H * state
            else:
                if self.causal:
                    mixing = H * (2 * Dqk + 2 * chunk_span * (Dv + 1) + (4 * (Dv + 1) if more_chunks else 0))
                else:
                    mixing = H * (2 * Dqk + 4 * (Dv + 1))
        return int(2 * params + mixing)
