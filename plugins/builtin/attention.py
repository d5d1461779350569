"""Standard causal multi-head attention (Vaswani et al. 2017, "Attention Is All You Need"), with grouped
query attention (Ainslie et al. 2023, "GQA") — the reference every relaxed variant is compared with.

This module registers the ``attention`` mixer and its typed options. The ``nn.Module`` lives in
``_attention.py`` and is imported only when a model is built.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from deconstruct.hookspecs import hookimpl


class AttentionOptions(BaseModel):
    """Options of the ``attention`` mixer. The defaults are standard attention."""

    model_config = ConfigDict(extra="forbid")

    kv_heads: int | None = Field(None, ge=1, description="key/value heads (GQA); default: one per query head")

    def check(self, ctx: Any) -> None:
        if self.kv_heads is not None and ctx.heads % self.kv_heads:
            raise ValueError(f"kv_heads ({self.kv_heads}) must divide heads ({ctx.heads})")


def build_attention(ctx: Any, options: AttentionOptions) -> Any:
    from deconstruct.builtin._attention import Attention

    return Attention(ctx, options)


@hookimpl
def register_mixers(register: Any) -> None:
    register(
        "attention",
        build=build_attention,
        options=AttentionOptions,
        summary="causal multi-head softmax attention (standard), GQA via kv_heads",
        paper="Vaswani et al. 2017, arXiv 1706.03762; Ainslie et al. 2023, arXiv 2305.13245",
        patterns=("causal_self", "noncausal_self"),
    )
