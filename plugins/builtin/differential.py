"""The ``differential`` mixer: differential attention (Ye et al. 2024, "Differential Transformer",
arXiv 2410.05258) and Grouped Differential Attention (Lim et al. 2025, "Grouped Differential Attention",
GDA) through the ``signal_ratio`` option.

Each differential head has two query/key halves of width d_h = d/h and a value of width 2·d_h:

    A_c  = softmax(Q_c·K_cᵀ/√d_h + mask)                 c = 1 (signal), 2 (noise)
    head = (A_1 − λ·A_2)·V
    λ    = exp(λ_q1·λ_k1) − exp(λ_q2·λ_k2) + λ_init      λ_* ∈ R^{d_h}, N(0, 0.1), shared by the layer's heads
    λ_init = 0.8 − 0.6·exp(−0.3·layer_index)              (0-indexed layer)
    out  = concat_h(RMSNorm(head_h)·(1 − λ_init))·W_O

GDA: of a fixed budget of n query/key heads (the standard model's ``model.heads``), ``signal_ratio`` r gives
S = n·r/(r + 1) to signal and G = n/(r + 1) to noise; each noise map is shared by r signal heads (repeated
as GQA repeats key/value heads) and subtracted from each of them. r = 1 is DiffAttn (S = G = n/2). Lim et
al. report moderate imbalance (3:1, 4:1) working best.

The module lives in ``_differential.py`` and is imported only when a model is built.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from deconstruct.hookspecs import hookimpl


class DifferentialOptions(BaseModel):
    """Options of the ``differential`` mixer.

    How heads map (the papers leave the widths to the implementation; chosen so that every configuration
    has the parameters of standard attention):

    - ``heads`` is the head budget n (default ``model.heads`` = h): the number of query/key halves of width
      d_h = d/h, signal and noise together, so W_Q, W_K ∈ R^{d×n·d_h} (= d×d by default) for every r.
    - ``signal_ratio`` r: S = n·r/(r + 1) signal heads and G = n/(r + 1) noise heads (Lim et al.'s
      re-allocation of a fixed budget; r = 1 gives DiffAttn's n/2 + n/2). Values are per signal head, of
      width D_v = n·d_h/S (2·d_h for r = 1, as in DiffAttn), so W_V ∈ R^{d×n·d_h} and W_O ∈ R^{n·d_h×d}
      keep their sizes too. Parameters (no bias): 4·d·n·d_h + 4·d_h (λ) + D_v (the RMSNorm gain) — with
      the default budget, standard attention's 4d² plus 4·d_h + D_v. Needs (r + 1) | n and S | n·d_h.
    - The RMSNorm over each head's D_v channels has one gain vector shared by all heads (as in the paper's
      code); λ is one scalar per layer, shared by all heads.
    - Earlier versions shrank the noise heads instead (H signal + H/r noise halves, fewer parameters for
      r > 1); that is no longer what ``signal_ratio`` does.
    """

    model_config = ConfigDict(extra="forbid")

    heads: int | None = Field(
        None, ge=2, description="head budget n: signal + noise query/key heads; default model.heads (parameters = standard attention)"
    )
    signal_ratio: int = Field(
        1, ge=1, description="GDA: signal heads per shared noise head (r:1) within the budget; 1 is DiffAttn"
    )

    def budget(self, ctx: Any) -> int:
        return self.heads if self.heads is not None else ctx.heads

    def noise_heads(self, ctx: Any) -> int:
        return self.budget(ctx) // (self.signal_ratio + 1)

    def signal_heads(self, ctx: Any) -> int:
        return self.budget(ctx) - self.noise_heads(ctx)

    def value_width(self, ctx: Any) -> int:
        return self.budget(ctx) * ctx.head_dim // self.signal_heads(ctx)

    def check(self, ctx: Any) -> None:
        """Reject head layouts that do not divide (one sentence each)."""
        h, r = ctx.heads, self.signal_ratio
        if ctx.d_model % h:
            raise ValueError(f"model.heads ({h}) must divide d_model ({ctx.d_model}) to give the half width d_h")
        n = self.budget(ctx)
        if n % (r + 1):
            valid = [k - 1 for k in range(2, n + 1) if n % k == 0 and (n * ctx.head_dim) % (n - n // k) == 0]
            raise ValueError(
                f"signal_ratio {r} splits a budget of {n} heads as {r}:1, so r + 1 must divide {n} "
                f"(valid ratios here: {', '.join(map(str, valid)) or 'none'}; or set heads)"
            )
        S = self.signal_heads(ctx)
        if (n * ctx.head_dim) % S:
            raise ValueError(
                f"the {S} signal heads share the value width {n}·d_h = {n * ctx.head_dim} evenly, so {S} must divide it; "
                f"choose another signal_ratio or d_model"
            )
        if getattr(ctx, "positions", None) == "rope" and ctx.head_dim % 2:
            raise ValueError(f"positions: rope rotates pairs of query/key channels, so d_h ({ctx.head_dim}) must be even")



@hookimpl
def register_mixers(register: Any) -> None:
    register(
        "differential",
        build="deconstruct.builtin._differential:DifferentialAttention",
        options=DifferentialOptions,
        summary="differential attention (A_1 − λ·A_2)·V; signal_ratio r re-allocates the head budget r:1 to signal (GDA)",
        paper="Ye et al. 2024, Differential Transformer, arXiv 2410.05258; "
        "Lim et al. 2025, Grouped Differential Attention",
        patterns=("causal_self", "noncausal_self"),
    )
