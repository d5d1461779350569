"""The ``channel_attention`` mixer: channel group attention from DaViT (Ding et al. 2022, "DaViT: Dual
Attention Vision Transformers", arXiv 2204.03645), MECHANISMS §5.

Tokens and channels swap roles. Q, K, V = x·W_{Q,K,V} as in standard attention; the d channels are split
into g = h groups of C_g = d_h = d/h channels (the model's heads), and in each group the *channels* attend to
each other, with the tokens as their features:

    A_g   = softmax(Q_gᵀ K_g · s)          (C_g × C_g; the sum inside Q_gᵀ K_g runs over all T tokens)
    out_g = (A_g V_gᵀ)ᵀ = V_g A_gᵀ          (T × C_g)
    out   = concat_g(out_g) · W_O

Every output token depends on every input token (A_g sums over the whole sequence), so the mixer is
non-causal only: it registers the ``noncausal_self`` pattern (CAB, MECHANISMS §8), and the spec validator
rejects it in a causal task (lm, mqar). Its cost is linear in T: O(T·d·d_h) per layer.

Choices:

- ``scale`` s: ``group`` = C_g^-1/2, what the paper writes (eq. 2, "Softmax[Q_iᵀK_i / √C_g]") and its code
  does (``head_dim ** -0.5``); ``tokens`` = T^-1/2, the inverse root of the length of the dot products
  (the analogue of 1/√d_h in token attention: the logits' spread no longer grows with T).
- Positions: the mixer itself is permutation-equivariant over tokens. ``positions: rope`` is not applied
  here (there are no per-token query/key dot products to rotate); learned positions enter through the
  embeddings as usual.
- No ``attention_weights``: its maps are C_g × C_g over channels, not T × T over tokens, so the token
  attention diagnostics skip it.

This module registers the mixer and its options; the ``nn.Module`` is in ``_channel_attention.py``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from deconstruct.hookspecs import hookimpl


class ChannelAttentionOptions(BaseModel):
    """Options of the ``channel_attention`` mixer. The defaults are DaViT's (scale 1/√C_g)."""

    model_config = ConfigDict(extra="forbid")

    scale: Literal["group", "tokens"] = Field(
        "group", description="softmax scale: group = 1/√C_g (DaViT) | tokens = 1/√T (the dot products' length)"
    )



@hookimpl
def register_mixers(register: Any) -> None:
    register(
        "channel_attention",
        build="deconstruct.builtin._channel_attention:ChannelAttention",
        options=ChannelAttentionOptions,
        summary="DaViT channel group attention: C_g×C_g softmax over channels per head group (non-causal only)",
        paper="Ding et al. 2022, DaViT, arXiv 2204.03645",
        patterns=("noncausal_self",),
    )
