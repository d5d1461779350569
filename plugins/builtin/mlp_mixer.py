"""``mlp``: no token mixing at all (Xue, Moosavi & Aletras 2025, "Deconstructing Attention",
arXiv 2510.11602, §principle 1). Each token passes through a gated MLP,
out = W_down(SiLU(W_gate·x) ⊙ W_up·x), whose width is chosen so its parameters match the attention it
replaces: 3·d·w ≈ 4·d² → w = round(4·d/3) by default.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from deconstruct.hookspecs import hookimpl


class MLPMixerOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    width: int | None = Field(None, ge=1, description="hidden width w; default round(4d/3) (matches 4d² attention params)")


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
