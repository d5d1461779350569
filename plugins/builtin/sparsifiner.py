"""The ``sparsifiner`` mixer: learned instance-dependent sparse attention (Wei et al. 2023, "Sparsifiner:
Learning Sparse Instance-Dependent Attention for Efficient Vision Transformers", CVPR 2023, arXiv 2303.13755).

A cheap low-rank *connectivity predictor* guesses the attention map, each query keeps only its top-k keys
under that guess, and exact softmax attention runs on the kept keys alone. The predictor, per head:

- queries and keys are down-projected along the channel axis, d_h → r (``rank``; the paper halves d);
- the keys are down-projected along the token axis: each block of S = ``block`` keys becomes n = ``basis``
  basis keys through a learned S×n matrix (the paper reduces the token axis by a fixed factor);
- the approximate scores of a query against a block's keys are its n basis scores mapped back to the S keys by
  a learned **sparse** n×S up-projection (only its ``up_density`` largest-magnitude entries are used);
- the ``top_k`` best-scoring keys are kept; the attention is exact on them (O(T·k·d_h)).

The predictor learns from a distillation loss, the KL divergence of its softmax from the dense attention map
(detached), weighted by ``distill`` and added to the training loss as ``aux_loss``; the top-k itself is not
differentiable. ``distill: 0`` freezes the predictor at its random initialisation (a random low-rank guess).

Adaptation to causal language modelling (departures from the paper, which is non-causal vision with a fixed
token count): the token-axis projection works per block of S keys, so any length works; a basis key mixes
the whole block, so the query's **own block is always attended directly** (its prefix, when causal) and the
predictor chooses among the keys of the *other* (causal: earlier) blocks only, which keeps the selection
from seeing the future. With k ≥ T every eligible key is kept and the mixer is exactly full attention.
Cost: attention O(T·(S + k)·d_h); the predictor's approximate map is still T×T but of rank n (n ≪ d_h), and
the distillation target (training only) is dense.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from deconstruct.hookspecs import hookimpl


class SparsifinerOptions(BaseModel):
    """Options of the ``sparsifiner`` mixer. Defaults: ``top_k`` 32 keys (the paper keeps 25 % of ViT's
    197 tokens ≈ 49; 32 at the probes' 128 tokens), ``rank`` d_h/2 (the paper's channel factor 2), blocks of
    ``block`` 8 keys reduced to ``basis`` 2 (a token factor 4; the paper's is 8 on 197 tokens), half of the
    up-projection's entries kept, distillation weight 1."""

    model_config = ConfigDict(extra="forbid")

    top_k: int = Field(32, ge=1, description="k: keys each query keeps (besides its own block)")
    rank: int | None = Field(None, ge=1, description="r: channel width of the predictor's q/k; default d_h/2")
    block: int = Field(8, ge=1, description="S: keys per block of the token-axis down-projection")
    basis: int = Field(2, ge=1, description="n: basis keys per block (token-axis down-projection S → n)")
    up_density: float = Field(0.5, gt=0, le=1, description="fraction of the n×S up-projection's entries kept (by magnitude)")
    distill: float = Field(1.0, ge=0, description="weight of the predictor's KL distillation loss; 0 freezes the predictor")

    def check(self, ctx: Any) -> None:
        """Reject settings that cannot be built (one sentence each)."""
        from deconstruct.builtin.attention import AttentionOptions

        if self.basis > self.block:
            raise ValueError(f"basis ({self.basis}) must not exceed block ({self.block}): it down-projects S keys to n")
        AttentionOptions().check(ctx)



@hookimpl
def register_mixers(register: Any) -> None:
    register(
        "sparsifiner",
        build="deconstruct.builtin._sparsifiner:SparsifinerAttention",
        options=SparsifinerOptions,
        summary="learned sparse attention: a low-rank connectivity predictor picks top-k keys per query",
        paper="Wei et al. 2023, Sparsifiner, CVPR, arXiv 2303.13755",
        patterns=("causal_self", "noncausal_self"),
    )
