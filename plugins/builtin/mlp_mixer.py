"""``mlp``: no token mixing at all (Xue, Moosavi & Aletras 2025, "Deconstructing Attention",
arXiv 2510.11602, §principle 1). Each token passes through a gated MLP,
out = W_down(SiLU(W_gate·x) ⊙ W_up·x), whose width is chosen so its parameters match the attention it
replaces: by default w makes 3·d·w (+ 2w + d biases) equal the standard attention of the same model —
4·d² for multi-head attention (w = round(4d/3)), less with grouped key/value heads (GQA: W_K, W_V are
d × d·h_kv/h), plus its biases when the model has them.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from deconstruct.hookspecs import hookimpl


class MLPMixerOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    width: int | None = Field(None, ge=1, description="hidden width w; default: the parameters of the model's standard attention")


def matched_width(ctx: Any) -> int:
    """The gated MLP width whose parameters equal the model's standard attention: W_Q, W_O (d × d),
    W_K, W_V (d × d·h_kv/h), biases d + 2·d·h_kv/h + d when the model has biases; the MLP has 3·d·w
    weights and 2w + d biases."""
    d, h = ctx.d_model, ctx.heads
    kv = ctx.standard_kv_heads or h
    kv_width = d * kv // h
    attention = 2 * d * d + 2 * d * kv_width + ((2 * d + 2 * kv_width) if ctx.bias else 0)
    return max(1, round((attention - (d if ctx.bias else 0)) / (3 * d + (2 if ctx.bias else 0))))


@hookimpl
def register_mixers(register: Any) -> None:
    register(
        "mlp",
        build="deconstruct.builtin._mlp:GLU.for_mixer",
        options=MLPMixerOptions,
        summary="no token mixing: a parameter-matched gated MLP per token",
        paper="Xue et al. 2025, Deconstructing Attention, arXiv 2510.11602",
        patterns=("causal_self", "noncausal_self"),
        mixes_tokens=False,  # each position is transformed on its own: the report treats it as "no mixing"
    )
