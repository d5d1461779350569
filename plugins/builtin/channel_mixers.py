"""Channel mixers: ``mlp`` (GPT-2 feed-forward), ``glu`` (SwiGLU, Shazeer 2020, arXiv 2002.05202) and
``none`` (no feed-forward block: Bermeitinger et al. 2024, "Reducing the Transformer Architecture to a
Minimum", arXiv 2410.13732). Hidden width is ``model.mlp_ratio · d`` (for glu: ⅔ of that, so the parameters
match the plain MLP).
"""

from __future__ import annotations

from typing import Any

from deconstruct.hookspecs import hookimpl


@hookimpl
def register_channel_mixers(register: Any) -> None:
    register("mlp", build="deconstruct.builtin._mlp:MLP.for_channel", summary="GELU feed-forward, width mlp_ratio·d",
             paper="Radford et al. 2019 (GPT-2)")
    register("glu", build="deconstruct.builtin._mlp:GLU.for_channel", summary="SwiGLU feed-forward, width ⅔·mlp_ratio·d",
             paper="Shazeer 2020, arXiv 2002.05202")
    register("none", build="deconstruct.builtin._mlp:no_channel_mixer", summary="no feed-forward block",
             paper="Bermeitinger et al. 2024, arXiv 2410.13732")
