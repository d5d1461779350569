"""Channel mixers: ``mlp`` (GPT-2 feed-forward), ``glu`` (SwiGLU, Shazeer 2020, arXiv 2002.05202) and
``none`` (no feed-forward block: Bermeitinger et al. 2024, "Reducing the Transformer Architecture to a
Minimum", arXiv 2410.13732). Hidden width is ``model.mlp_ratio · d`` (for glu: ⅔ of that, so the parameters
match the plain MLP).
"""

from __future__ import annotations

from typing import Any

from deconstruct.hookspecs import hookimpl


def build_mlp(ctx: Any, options: Any) -> Any:
    from deconstruct.builtin._mlp import MLP

    return MLP(ctx.d_model, int(ctx.mlp_ratio * ctx.d_model), bias=ctx.bias)


def build_glu(ctx: Any, options: Any) -> Any:
    from deconstruct.builtin._mlp import GLU

    return GLU(ctx.d_model, int(round(2 * ctx.mlp_ratio * ctx.d_model / 3)), bias=ctx.bias)


def build_none(ctx: Any, options: Any) -> None:
    return None


@hookimpl
def register_channel_mixers(register: Any) -> None:
    register("mlp", build=build_mlp, summary="GELU feed-forward, width mlp_ratio·d", paper="Radford et al. 2019 (GPT-2)")
    register("glu", build=build_glu, summary="SwiGLU feed-forward, width ⅔·mlp_ratio·d", paper="Shazeer 2020, arXiv 2002.05202")
    register("none", build=build_none, summary="no feed-forward block", paper="Bermeitinger et al. 2024, arXiv 2410.13732")
