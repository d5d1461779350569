"""The ``biformer`` mixer: bi-level routing attention (Zhu et al. 2023, "BiFormer: Vision Transformer with
Bi-Level Routing Attention", arXiv 2303.08125), adapted to 1-D sequences (MECHANISMS §5).

The sequence is split into regions of S = ``region_size`` tokens (the last one may be shorter). Per head:

1. region level — region query / key = the mean of the region's queries / keys; each query keeps the
   ``top_k`` key regions with the highest region-level score q̄·k̄;
2. token level — softmax attention over the tokens of the kept regions only (causal mask inside them).

Causal adaptation (choices the paper, which is non-causal 2-D vision, leaves open):

- only regions at or before the query's region are eligible, and the query's **own region is always kept**
  (it holds the query's nearest past and its diagonal, so every query has a key); the other top_k − 1
  slots go to the best-scoring earlier regions. top_k = 1 is therefore block-local attention, and
  top_k ≥ the number of regions is full causal attention.
- the region query of token i is the mean of its region's queries **up to and including i** (the region's
  prefix), not of the whole region: the whole-region mean would let later tokens of the region change
  which regions an earlier query sees, i.e. leak the future through the routing. For the last token of a
  region the two are the same. Earlier regions lie entirely in the past, so their key means are used as is.

Routing is shared across heads by default, as in the paper: the region-level affinity is computed on the
full (all-head) query and key region means, q̄·k̄ = Σ_h q̄_h·k̄_h, and every head reads the same regions;
``routing: per_head`` routes each head on its own (the earlier behaviour of this mixer). ``lce: K`` adds the
paper's local-context enhancement, a depth-wise convolution of kernel K over V (causal: over the K − 1
previous tokens and the token itself) added to the attention output before W_O; its H·D·(K + 1) parameters
(weights and bias) are the only ones beyond standard attention's.

Non-causal: the paper's routing — one region query per region (the whole-region mean), top_k regions
among all, no forced own region. The top-k selection is not differentiable; gradients flow through the
token-level attention only, as in the paper.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from deconstruct.hookspecs import hookimpl


class BiFormerOptions(BaseModel):
    """Options of the ``biformer`` mixer. ``region_size`` S = 16 tokens per region (BiFormer's 7×7 = 49-token
    regions are 2-D; 16 gives several regions at the probes' short lengths), ``top_k`` = 4 key regions per
    query (BiFormer uses 1–16 across stages; 4 is its early-stage value)."""

    model_config = ConfigDict(extra="forbid")

    region_size: int = Field(16, description="S: tokens per region (the last region may be shorter)")
    top_k: int = Field(4, description="key regions kept per query (causal: the query's own region plus top_k − 1 earlier)")
    routing: Literal["shared", "per_head"] = Field(
        "shared", description="one routing decision per region pair for all heads (the paper's) or one per head"
    )
    lce: int = Field(0, ge=0, description="local-context enhancement: kernel size of a depth-wise conv on V added "
                                          "to the output (the paper's LCE uses 5); 0 = off")

    def check(self, ctx: Any) -> None:
        """Reject settings that cannot be built (one sentence each)."""
        from deconstruct.builtin.attention import AttentionOptions

        if self.region_size < 1:
            raise ValueError(f"region_size ({self.region_size}) must be at least 1 token per region")
        if self.top_k < 1:
            raise ValueError(f"top_k ({self.top_k}) must be at least 1, otherwise a query has no key region to attend to")
        if self.lce and not ctx.causal and self.lce % 2 == 0:
            raise ValueError(f"lce ({self.lce}) must be odd without a causal mask, so the convolution is centred on the token")
        AttentionOptions().check(ctx)  # the heads' own constraints (rope needs an even head width)



@hookimpl
def register_mixers(register: Any) -> None:
    register(
        "biformer",
        build="deconstruct.builtin._biformer:BiLevelRoutingAttention",
        options=BiFormerOptions,
        summary="bi-level routing attention: each query attends to the tokens of its top-k regions (by region-mean score)",
        paper="Zhu et al. 2023, BiFormer, arXiv 2303.08125",
        patterns=("causal_self", "noncausal_self"),
    )
