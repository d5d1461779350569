"""The ``differential`` mixer: differential attention (Ye et al. 2024, "Differential Transformer",
arXiv 2410.05258) and Grouped Differential Attention (Lim et al. 2025, "Grouped Differential Attention",
GDA) through the ``signal_ratio`` option.

Each differential head has two query/key halves of width d_h = d/h and a value of width 2·d_h:

    A_c  = softmax(Q_c·K_cᵀ/√d_h + mask)                 c = 1 (signal), 2 (noise)
    head = (A_1 − λ·A_2)·V
    λ    = exp(λ_q1·λ_k1) − exp(λ_q2·λ_k2) + λ_init      λ_* ∈ R^{d_h}, N(0, 0.1), shared by the layer's heads
    λ_init = 0.8 − 0.6·exp(−0.3·layer_index)              (0-indexed layer)
    out  = concat_h(RMSNorm(head_h)·(1 − λ_init))·W_O

GDA: ``signal_ratio`` r signal heads share one noise head — the noise map A_2 of head g is subtracted from
each of the signal heads g·r … g·r + r − 1. r = 1 is DiffAttn. Lim et al. report moderate imbalance
(3:1, 4:1) working best.

The module lives in ``_differential.py`` and is imported only when a model is built.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from deconstruct.hookspecs import hookimpl


class DifferentialOptions(BaseModel):
    """Options of the ``differential`` mixer.

    How heads map (a choice the papers leave to the implementation):

    - ``heads`` is the number H of differential (signal) heads; the half width d_h = d/h stays the model's
      head width (``model.heads`` = h). The default H = h // 2 is the paper's: with r = 1 the projections
      are W_Q, W_K ∈ R^{d×2H·d_h} = R^{d×d}, W_V ∈ R^{d×d}, W_O ∈ R^{d×d}, so the parameters are those of
      standard attention (4d²) plus λ (4·d_h) and the shared RMSNorm gain (2·d_h).
    - ``signal_ratio`` r: there are H signal query/key halves and G = H / r noise halves, so with r > 1
      W_Q, W_K shrink to d×(H + G)·d_h (values and W_O are per signal head and do not change).
      Parameters (no bias): 2·d·d_h·(H + G) + 4·d·d_h·H + 6·d_h.
    - The RMSNorm over each head's 2·d_h channels has one gain vector shared by all heads (as in the
      paper's code); λ is one scalar per layer, shared by all heads.
    """

    model_config = ConfigDict(extra="forbid")

    heads: int | None = Field(
        None, ge=1, description="differential (signal) heads H; default model.heads // 2 (parameters ≈ standard attention)"
    )
    signal_ratio: int = Field(
        1, ge=1, description="GDA: signal heads per shared noise head (r:1); 1 is DiffAttn"
    )

    def signal_heads(self, ctx: Any) -> int:
        return self.heads if self.heads is not None else ctx.heads // 2

    def check(self, ctx: Any) -> None:
        """Reject head layouts that do not divide (one sentence each)."""
        h = ctx.heads
        if ctx.d_model % h:
            raise ValueError(f"model.heads ({h}) must divide d_model ({ctx.d_model}) to give the half width d_h")
        if self.heads is None and (h < 2 or h % 2):
            raise ValueError(
                f"differential attention uses model.heads // 2 heads of two halves, so model.heads ({h}) must be "
                f"even and at least 2; or set heads explicitly"
            )
        H = self.signal_heads(ctx)
        if H % self.signal_ratio:
            raise ValueError(f"signal_ratio ({self.signal_ratio}) must divide the number of differential heads ({H})")
        if getattr(ctx, "positions", None) == "rope" and ctx.head_dim % 2:
            raise ValueError(f"positions: rope rotates pairs of query/key channels, so d_h ({ctx.head_dim}) must be even")



@hookimpl
def register_mixers(register: Any) -> None:
    register(
        "differential",
        build="deconstruct.builtin._differential:DifferentialAttention",
        options=DifferentialOptions,
        summary="differential attention (A_1 − λ·A_2)·V; signal_ratio r > 1 shares noise heads (GDA)",
        paper="Ye et al. 2024, Differential Transformer, arXiv 2410.05258; "
        "Lim et al. 2025, Grouped Differential Attention",
        patterns=("causal_self", "noncausal_self"),
    )
