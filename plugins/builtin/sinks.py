"""The ``sinks`` mixer: standard attention with a learnable attention sink, so that a head can put mass
*nowhere* instead of on the first token (the "attention sink" of Xiao et al. 2023, "Efficient Streaming
Language Models with Attention Sinks", arXiv 2309.17453). Two forms, ``sink``:

- ``logit`` — a learned per-head logit b_h joins every query's softmax as an extra column with a zero value:
  a_ij = e^{s_ij} / (e^{b_h} + Σ_j' e^{s_ij'}), so the weights on real tokens sum to less than one (the
  softmax-off-by-one of Miller 2023, with the per-head learned sink logits of OpenAI's gpt-oss 2025);
- ``token`` — a learned sink key k_h and value v_h per head, visible to every query (Xiao et al.'s
  learnable sink token, as a key/value pair rather than an input token, so positions are not shifted).

With b_h → −∞ (or a sink key no query scores) both are standard attention. The mixing matrix reported to the
diagnostics covers the real tokens only; its rows sum to 1 minus the sink's share. The secondary-sink
diagnostics (Wong et al. 2025) are computed for every attention-like mixer, see deconstruct.train.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from deconstruct.hookspecs import hookimpl


class SinkOptions(BaseModel):
    """Options of the ``sinks`` mixer: the form (``logit``, the default, or ``token``) and the sink logit's
    initial value (0: the sink starts as heavy as one token with score 0)."""

    model_config = ConfigDict(extra="forbid")

    sink: Literal["logit", "token"] = Field("logit", description="logit: learned per-head sink logit | token: learned sink key/value per head")
    init_logit: float = Field(0.0, description="sink: logit — the initial b_h")

    def check(self, ctx: Any) -> None:
        from deconstruct.builtin.attention import AttentionOptions

        if self.sink == "token" and self.init_logit != 0.0:
            raise ValueError("init_logit applies to sink: logit only (a sink token's score is q·k_sink)")
        AttentionOptions().check(ctx)



@hookimpl
def register_mixers(register: Any) -> None:
    register(
        "sinks",
        build="deconstruct.builtin._sinks:SinkAttention",
        options=SinkOptions,
        summary="attention with a learnable sink: a per-head sink logit (zero value) or a learned sink key/value",
        paper="Xiao et al. 2023, StreamingLLM, arXiv 2309.17453; Miller 2023, softmax-off-by-one; OpenAI 2025, gpt-oss sinks",
        patterns=("causal_self", "noncausal_self"),
    )
