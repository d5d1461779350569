"""The ``combiner`` mixer: full attention coverage at sub-quadratic cost (Ren et al. 2021, "Combiner: Full
Attention Transformer with Sparse Computation Cost", NeurIPS 2021, arXiv 2107.05768).

Combiner treats attention as a conditional expectation E_{p(j|i)}[v_j] and factorises p(j|i) so that every
earlier token is still reached, either directly or through a region summary::

    A(x_i) = Σ_{j ∈ Ω_i^0} p(j | i)·v_j  +  Σ_r p(Ω_i^r | i)·Σ_{j ∈ Ω_i^r} q(j | Ω_i^r)·v_j

- p(j | i) ∝ exp(q_i·k_j/√d_h) over the direct span Ω_i^0 and p(Ω_i^r | i) ∝ exp(q_i·k_{Ω_r}/√d_h) over
  the regions share ONE normaliser (one softmax over [direct keys, region keys]);
- k_{Ω_r} is the max-pool of the region's keys (the paper's choice for the region key);
- q(j | Ω_r) ∝ exp(w_h·k_j/√d_h), a softmax inside the region with a learned per-head vector w_h (it must
  not depend on the query i, or the region sum could not be shared), so v_{Ω_r} = Σ_j q(j | Ω_r)·v_j.

Two causal factorisations (the paper's Combiner-Fixed and Combiner-Axial), with blocks of S tokens
(S = ``region_size``, default ⌈√T⌉):

- ``fixed``: Ω_i^0 = i's own block up to i; one region per earlier block (contiguous).
- ``axial``: the sequence as rows of S; Ω_i^0 = i's own row up to i; one region per column c, the tokens of
  column c in all earlier rows (strided). Its summaries are prefix max / prefix softmax sums over rows.

Either way each query scores S direct keys and ≈ T/S region keys: O(T·(S + T/S)) = O(T√T) for S = √T.
With one region (S ≥ T) there are no summaries and Combiner is exactly full causal attention.

Adaptation: the paper's language models are causal as here; its non-causal (vision) forms are not built.
w_h starts at zero, i.e. mean pooling inside each region, which training then sharpens.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from deconstruct.hookspecs import hookimpl


class CombinerOptions(BaseModel):
    """Options of the ``combiner`` mixer: the factorisation and the block size S (default ⌈√T⌉ of the
    actual sequence length, which is what makes the cost O(T√T))."""

    model_config = ConfigDict(extra="forbid")

    factorization: Literal["fixed", "axial"] = Field(
        "fixed", description="fixed: regions = earlier blocks | axial: regions = columns of earlier rows"
    )
    region_size: int | None = Field(None, ge=1, description="S: tokens per block / row; default ⌈√T⌉")

    def check(self, ctx: Any) -> None:
        """Reject settings that cannot be built (one sentence each)."""
        from deconstruct.builtin.attention import AttentionOptions

        if not ctx.causal:
            raise ValueError("combiner is built in its causal forms (fixed, axial) only; use it with a causal task")
        AttentionOptions().check(ctx)



@hookimpl
def register_mixers(register: Any) -> None:
    register(
        "combiner",
        build="deconstruct.builtin._combiner:CombinerAttention",
        options=CombinerOptions,
        summary="full-coverage attention at O(T√T): direct local span + region summaries under one softmax",
        paper="Ren et al. 2021, Combiner, NeurIPS, arXiv 2107.05768",
        patterns=("causal_self",),
    )
