"""The ``span_search`` mixer: superlinear multi-step attention by span search (2026, "superlinear
multi-step attention"): a learned router searches O(√T) candidate contiguous spans, the query attends
within the best ones, and the span outputs are gated together.

Per head, with the sequence cut into contiguous spans of S tokens (``span``, default ⌈√T⌉, so ≈ √T
candidates):

1. search — a learned router scores every candidate span for query i: ρ_ip = (W_r·q_i)·k̄_p/√d_h, with k̄_p
   the mean key of span p (causal: of the own span's keys up to i) and W_r a learned d_h×d_h map shared by
   the heads;
2. attend — softmax attention of q_i over the tokens of each of the ``top_k`` best spans separately, giving
   one output o_ip per span;
3. gate — y_i = Σ_p g_ip·o_ip with g_i = softmax of the router scores over the searched spans. The gate is
   what trains the router (the top-k choice is not differentiable).

Causal: the query's own span is always searched (its prefix is attended) and only earlier, complete spans
are candidates. Cost: router O(T·(T/S)·d_h), attention O(T·top_k·S·d_h): O(T√T) for S = √T. With one
span (S ≥ T) the router has one candidate, its gate is 1 and the mixer is exactly full attention.

Adaptation: the source describes the search in a long-context LM; here the span set is the fixed partition
into S-token spans (candidate spans do not overlap) and the router reads pooled keys.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from deconstruct.hookspecs import hookimpl


class SpanSearchOptions(BaseModel):
    """Options of the ``span_search`` mixer: ``top_k`` 4 spans per query (its own included), spans of
    ``span`` tokens (default ⌈√T⌉)."""

    model_config = ConfigDict(extra="forbid")

    top_k: int = Field(4, ge=1, description="spans attended per query, its own span included")
    span: int | None = Field(None, ge=1, description="S: tokens per candidate span; default ⌈√T⌉")

    def check(self, ctx: Any) -> None:
        from deconstruct.builtin.attention import AttentionOptions

        AttentionOptions().check(ctx)



@hookimpl
def register_mixers(register: Any) -> None:
    register(
        "span_search",
        build="deconstruct.builtin._span_search:SpanSearchAttention",
        options=SpanSearchOptions,
        summary="span search: a learned router picks top-k of √T contiguous spans, attention within each, gated sum",
        paper="superlinear multi-step attention (span search), 2026",
        patterns=("causal_self", "noncausal_self"),
    )
