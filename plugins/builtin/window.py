"""The ``window`` mixer: sliding / dilated window attention, the 1-D causal form of neighborhood attention
(Hassani et al. 2023, "Neighborhood Attention Transformer", arXiv 2204.07143; Hassani & Shi 2022,
"Dilated Neighborhood Attention Transformer", arXiv 2209.15001).

Standard softmax attention in which query i sees only the keys of its window (MECHANISMS §5):

- causal:     j ∈ {i − m·δ : m = 0 … w − 1, j ≥ 0}, i.e. j ∈ [i − w·δ + δ, i] with stride δ;
- non-causal: j ∈ {i + m·δ : m = −⌊w/2⌋ … ⌊w/2⌋, 0 ≤ j < T}, a window centred on i
  (2·⌊w/2⌋ + 1 keys: w for odd w, w + 1 for even w).

Alternating dilation 1 and dilation > 1 across layers (a hybrid spec) is DiNAT's layout.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from deconstruct.hookspecs import hookimpl


class WindowOptions(BaseModel):
    """Options of the ``window`` mixer. ``size`` w = 16 (keys per query; NAT's 7×7 ≈ 49 is 2-D, a 1-D
    language window of 16 keeps locality visible at the tiny sequence lengths of the probes), ``dilation``
    δ = 1 (plain sliding window)."""

    model_config = ConfigDict(extra="forbid")

    size: int = Field(16, ge=1, description="w: keys per query (causal), or window width (non-causal: ±⌊w/2⌋)")
    dilation: int = Field(1, ge=1, description="δ: stride between the window's keys (1: contiguous)")

    def check(self, ctx: Any) -> None:
        """Reject settings that cannot be built or leave nothing to attend to (one sentence each)."""
        from deconstruct.builtin.attention import AttentionOptions

        if self.size > 1 and self.dilation >= ctx.max_seq_len:
            raise ValueError(
                f"dilation ({self.dilation}) must be below the sequence length ({ctx.max_seq_len}), "
                f"otherwise every token attends only to itself"
            )
        AttentionOptions().check(ctx)  # the heads' own constraints (rope needs an even head width)



@hookimpl
def register_mixers(register: Any) -> None:
    register(
        "window",
        build="deconstruct.builtin._window:WindowAttention",
        options=WindowOptions,
        summary="sliding / dilated window attention: each query sees w keys spaced δ apart",
        paper="Hassani et al. 2023, NAT, arXiv 2204.07143; Hassani & Shi 2022, DiNAT, arXiv 2209.15001",
        patterns=("causal_self", "noncausal_self"),
    )
