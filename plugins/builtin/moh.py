"""The ``moh`` mixer: Mixture-of-Head attention (Jin et al. 2024, "MoH: Multi-Head Attention as
Mixture-of-Head Attention", arXiv 2410.11842).

Multi-head attention is a sum over heads, out = Σ_i head_i·W_O^i; MoH weights that sum per token with gates g_i
and lets each token use only some heads:

- h_s *shared* heads are always on, with gates softmax(W_s·x)·h_s (they sum to h_s);
- of the h − h_s *routed* heads each token keeps the top-k of softmax(W_r·x), renormalised to sum to one
  and multiplied by k (so the k kept gates sum to k, the others are 0);
- a two-way mix [α1, α2] = 2·softmax(W_h·x) scales the shared gates by α1 and the routed ones by α2;
- out = W_O·concat_i(g_i·head_i), with head_i standard softmax attention.

A load-balance loss (h − h_s)·Σ_i P_i·f_i (P_i the mean routed probability of head i, f_i the fraction of
tokens that keep head i), times ``balance_coef``, is stored in ``aux_loss`` during training and added to the
loss by the training loop. With ``uniform_gates`` every gate is 1 and the mixer is standard attention.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from deconstruct.hookspecs import hookimpl


class MoHOptions(BaseModel):
    """Options of the ``moh`` mixer (MECHANISMS §4). Choices the paper leaves open, and what is chosen here:

    - ``shared_heads`` (h_s): default 2, fixed rather than a fraction of h so that small models keep routed
      heads (MoH's own models use a larger share). h_s = 0 is allowed (pure routing: no W_s, no W_h, the
      routed gates are used as they are); h_s = 1 makes the shared gate a constant 1, so W_s then gets no
      gradient.
    - ``top_k``: default half of the routed heads, max(1, (h − h_s) // 2). With k = 1 the renormalised
      routed gate is exactly 1 (×α2), so W_r learns only through the load-balance loss.
    - ``balance_coef``: 0.01 as in the paper; 0 turns the loss off (``aux_loss`` stays None).
    - ``uniform_gates``: every gate 1, no router parameters — exactly the ``attention`` mixer (a control).
    """

    model_config = ConfigDict(extra="forbid")

    shared_heads: int = Field(2, ge=0, description="h_s: heads every token uses (default 2)")
    top_k: int | None = Field(None, ge=1, description="routed heads kept per token; default half the routed heads")
    balance_coef: float = Field(0.01, ge=0, description="weight of the load-balance loss (h - h_s)·Σ P_i·f_i")
    uniform_gates: bool = Field(False, description="all gates 1: standard attention (control)")

    def routed(self, heads: int) -> int:
        return heads - self.shared_heads

    def k(self, heads: int) -> int:
        """The top-k actually used: the option, or half the routed heads (at least 1)."""
        return self.top_k if self.top_k is not None else max(1, self.routed(heads) // 2)

    def check(self, ctx: Any) -> None:
        """Reject settings that cannot be built (one sentence each)."""
        from deconstruct.builtin.attention import AttentionOptions

        H = ctx.heads
        if self.shared_heads >= H:
            raise ValueError(
                f"shared_heads ({self.shared_heads}) must be less than heads ({H}) so that some heads are routed"
            )
        if self.top_k is not None and self.top_k > self.routed(H):
            raise ValueError(
                f"top_k ({self.top_k}) cannot exceed the routed heads (heads − shared_heads = {self.routed(H)})"
            )
        AttentionOptions().check(ctx)  # the standard heads' own constraints (rope needs an even head width)



@hookimpl
def register_mixers(register: Any) -> None:
    register(
        "moh",
        build="deconstruct.builtin._moh:MoHAttention",
        options=MoHOptions,
        summary="mixture-of-head attention: shared heads + top-k routed heads, gated per token before W_O",
        paper="Jin et al. 2024, MoH: Multi-Head Attention as Mixture-of-Head Attention, arXiv 2410.11842",
        patterns=("causal_self", "noncausal_self"),
    )
