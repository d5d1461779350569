"""The ``bam`` mixer: a soft mixture of attention experts (Zhang et al. 2024, "BAM! Just Like That: Simple
and Efficient Parameter Upcycling for Mixture of Experts", arXiv 2408.08274).

E = ``experts`` complete multi-head attentions (each its own W_Q, W_K, W_V, W_O) and a router W_g; every
token uses every expert (BAM's soft routing of attention experts), weighted by g = softmax(W_g·x):

    y_i = Σ_e g_ie·Attn_e(x)_i = W_O·[g_i1·z_i1; …; g_iE·z_iE]      (z_ie: expert e's concatenated heads)

``share_kv`` is BAM's key/value sharing: one W_K, W_V serve all experts (fewer parameters, one K/V cache),
only W_Q and W_O are per expert. BAM places this mixer in *parallel* blocks (``model.parallel: true``), which
are a separate model switch here, so a study can cross the two.

Departure: BAM initialises (upcycles) the experts from trained dense models; here they are trained from
scratch with independent random initialisations. With one expert the mixer is standard attention.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from deconstruct.hookspecs import hookimpl


class BAMOptions(BaseModel):
    """Options of the ``bam`` mixer: ``experts`` 4 attention experts (BAM upcycles 2–8), ``share_kv`` off."""

    model_config = ConfigDict(extra="forbid")

    experts: int = Field(4, ge=1, description="E: attention experts, soft-routed per token")
    share_kv: bool = Field(False, description="one W_K, W_V shared by every expert (BAM's KV sharing)")

    def check(self, ctx: Any) -> None:
        from deconstruct.builtin.attention import AttentionOptions

        AttentionOptions().check(ctx)



@hookimpl
def register_mixers(register: Any) -> None:
    register(
        "bam",
        build="deconstruct.builtin._bam:AttentionExperts",
        options=BAMOptions,
        summary="mixture of attention experts: every token soft-routed over E full attentions (optionally shared K/V)",
        paper="Zhang et al. 2024, BAM, arXiv 2408.08274",
        patterns=("causal_self", "noncausal_self"),
    )
