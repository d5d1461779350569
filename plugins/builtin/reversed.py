"""The ``reversed`` mixer: reversed attention, children *send* instead of parents gathering (Ding et al.
2023, "Visual Dependency Transformers: Dependency Tree Emerges from Reversed Attention" — DependencyViT,
CVPR 2023, arXiv 2304.03282).

Per head h, A_h = softmax_j(q_i·k_j/√d_h) is read as each token i (a child) choosing its parent j. Instead of
token i gathering Σ_j A_h[i, j]·v_j, every child sends its value to its parents, through the transposed map:

    y_j = W_O·concat_h( Σ_i s_ih·m_i·A_h[i, j]·v_hi )

- s_ih: the **head selector**, softmax over heads of W_s·x_i — which head's parent choice child i follows;
- m_i: the **message controller**, sigmoid(w_m·x_i) ∈ (0, 1) — how much child i sends at all.

A parent's input is a sum over its children, not an average: its size grows with the number of children,
as in the paper. Reversed attention lets every token write to every other, so it has no causal form; it is
registered for the non-causal pattern only (e.g. the ``cloze`` task).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from deconstruct.hookspecs import hookimpl


class ReversedOptions(BaseModel):
    """The ``reversed`` mixer has no options: the head selector and message controller are always on."""

    model_config = ConfigDict(extra="forbid")

    def check(self, ctx: Any) -> None:
        from deconstruct.builtin.attention import AttentionOptions

        if ctx.causal:
            raise ValueError("reversed attention sends every token's value to its parents anywhere in the sequence, so it has no causal form; use a non-causal task such as cloze")
        AttentionOptions().check(ctx)



@hookimpl
def register_mixers(register: Any) -> None:
    register(
        "reversed",
        build="deconstruct.builtin._reversed:ReversedAttention",
        options=ReversedOptions,
        summary="reversed attention: children send values to parents through Aᵀ, with a head selector and message gate",
        paper="Ding et al. 2023, DependencyViT, CVPR, arXiv 2304.03282",
        patterns=("noncausal_self",),
    )
