"""The ``attention`` mixer: standard causal multi-head attention (Vaswani et al. 2017, "Attention Is All
You Need", arXiv 1706.03762) with grouped-query attention (Ainslie et al. 2023, "GQA", arXiv 2305.13245),
and every design principle of attention as an orthogonal option, so that the variants combine:

- ``qk_source`` — where queries and keys come from (Xue, Moosavi & Aletras 2025, "Deconstructing
  Attention", arXiv 2510.11602): the hidden state (standard), the static token embeddings (StaticEmbQK),
  a frozen random sequence (RndEmbQK) or one fixed real text (FixedSeqQK) run through the model's own blocks.
- ``form`` — the mathematical form (Xue et al. 2025): softmax (standard), approximate (second-order Taylor
  linear attention, as in Based: Arora et al. 2024, arXiv 2402.18668), non_approximate (one score per
  token, causal prefix softmax), or elementwise sigmoid / relu scores (Ramapuram et al. 2024,
  arXiv 2409.04431; Wortsman et al. 2023, arXiv 2309.08586).
- ``qk`` — the query/key maps: separate (standard), symmetric (W_K = W_Q) or collapsed (one W_QK per head)
  from Bermeitinger et al. 2024, "Reducing the Transformer Architecture to a Minimum", arXiv 2410.13732;
  frozen (random, never trained) from Dong et al. 2025, "Is Random Attention Sufficient…".
- ``vo`` — the value/output maps (Bermeitinger et al. 2024): separate (standard), collapsed (one W_VO per
  head) or identity (W_V = W_O = I).

The named variants (``approximate``, ``random_qk``, ``symmetric_qk``, …) are presets over these options
(``presets.py``). This module registers the mixer and its typed options; the ``nn.Module`` lives in
``_attention.py`` and the non-softmax forms in ``_forms.py``, imported only when a model is built.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from deconstruct.hookspecs import hookimpl

FIXED_SOURCES = ("random", "fixed_text")
DEFAULT_CHUNK = {"approximate": 256, "non_approximate": 64}


class AttentionOptions(BaseModel):
    """Options of the ``attention`` mixer. The defaults are standard attention.

    Choices the papers leave open, and what is chosen here:

    - ``normalization`` (form: approximate): ``single`` (the default) divides the Taylor numerator by one
      normaliser, φ(q_i)·Σ_{j≤i} φ(k_j) (positive: 1 + s + s²/2 ≥ ½; the Based form). ``separate`` is the
      paper's text read literally: each Taylor order divided by its own row sum (every order's row sums to
      1) and the three added. **Deviation from the paper's text:** the first-order weights s_ij are signed,
      so their row sum crosses 0 and the normalised weights explode (|den| is floored at 1e-6); trained that
      way the byte-level LM stalls near a unigram model even in the hybrid (``studies/approximate-
      normalisation.yaml`` measures both), while the paper's hybrid approximate is close to standard
      attention. So ``single`` is the default and ``separate`` an option, as ../shared/MECHANISMS.md asks.
    - ``random_std`` (qk_source: random): σ of the frozen random sequence ε ~ N(0, σ²I); default 1.0, the
      scale of a unit-variance input (the pre-norm in front of each mixer rescales it anyway).
    - ``detach_stream`` (qk_source: random | fixed_text): default false — gradients flow through the fixed
      stream into the blocks it passes (the paper recomputes the stream with the current weights and gives
      no reason to cut them; cutting them is cheaper and removes a second path by which the relaxed layers'
      Q/K train the earlier blocks, so it is the ablation worth having as an option).
    - ``static_positions`` (qk_source: static): default true — the static stream is the token embeddings
      plus the position information the model has (learned positions added; RoPE rotates queries and keys
      inside attention as usual). Without positions a query weighs every occurrence of a token equally
      wherever it stands. The paper relaxes the *contextual* dependency of Q/K, not their position
      information; with rotary positions (a Llama-style model) the static queries/keys are rotated inside
      attention like any others, and true gives learned-position models the same. The paper's text does not
      spell this out (we could not check its code): false is the ablation "no position information in Q/K"
      and the behaviour of earlier versions of this tool.
    - ``chunk_size`` (form: approximate | non_approximate): tokens per chunk of the linear-time causal
      computation; changes speed and memory, not the result (up to rounding). Inside a chunk the quadratic
      kernel costs ~C·(d_qk + d_v) per token, the state read/written across chunks ~4·d_qk²·d_v for the
      Taylor map but only ~4·d_v for the prefix softmax, so the defaults are 256 (approximate: with
      d_qk = 16 the two costs meet near C ≈ 500) and 64 (non_approximate).
    - ``qk_dim``: per-head query/key width (default d_h). Based uses 16 with the Taylor map, whose state has
      (1 + qk_dim + qk_dim²)·d_h entries per head.
    """

    model_config = ConfigDict(extra="forbid")

    qk_source: Literal["hidden", "static", "random", "fixed_text"] = Field(
        "hidden", description="queries/keys from: hidden state | static embeddings | random stream | fixed text stream"
    )
    form: Literal["softmax", "approximate", "non_approximate", "sigmoid", "relu"] = Field(
        "softmax", description="softmax | approximate (Taylor linear) | non_approximate (prefix softmax) | sigmoid | relu"
    )
    qk: Literal["separate", "symmetric", "collapsed", "frozen"] = Field(
        "separate", description="W_Q, W_K: separate | symmetric (W_K = W_Q) | collapsed (W_QK per head) | frozen (random)"
    )
    vo: Literal["separate", "collapsed", "identity"] = Field(
        "separate", description="W_V, W_O: separate | collapsed (W_VO per head) | identity (W_V = W_O = I)"
    )
    kv_heads: int | None = Field(None, ge=1, description="key/value heads (GQA); default: one per query head")
    qk_dim: int | None = Field(None, ge=1, description="per-head query/key width; default d_h")
    normalization: Literal["single", "separate"] = Field(
        "single", description="form approximate: one normaliser (default), or one per Taylor order (the paper's text; unstable)"
    )
    chunk_size: int | None = Field(
        None, ge=1, description="form approximate / non_approximate: tokens per chunk; default 256 / 64"
    )
    random_std: float = Field(1.0, gt=0, description="qk_source random: std of the frozen random sequence")
    detach_stream: bool = Field(False, description="qk_source random / fixed_text: no gradient through the fixed stream")
    static_positions: bool = Field(
        True, description="qk_source static: add the model's learned positions to the static embeddings"
    )

    def check(self, ctx: Any) -> None:
        """Reject combinations that cannot be built or would silently ignore an option (one sentence each)."""
        H = ctx.heads
        if self.kv_heads is not None and H % self.kv_heads:
            raise ValueError(f"kv_heads ({self.kv_heads}) must divide heads ({H})")
        gqa = self.kv_heads is not None and self.kv_heads != H
        if gqa and self.qk == "symmetric":
            raise ValueError("qk: symmetric uses W_K = W_Q, so keys have one head per query head; remove kv_heads")
        if gqa and self.qk == "collapsed":
            raise ValueError("qk: collapsed has no key projection (the key is the input itself), so kv_heads has nothing to group; remove kv_heads")
        if gqa and self.vo != "separate":
            raise ValueError(f"vo: {self.vo} has no value projection to share between heads (GQA); remove kv_heads")
        if self.qk == "collapsed" and self.qk_dim is not None:
            raise ValueError("qk_dim sets the width of W_Q and W_K, which qk: collapsed replaces by a d×d W_QK per head; remove qk_dim")
        if self.qk == "collapsed" and self.form == "approximate":
            raise ValueError(
                f"qk: collapsed with form: approximate would need Taylor features of the d-wide input "
                f"(1 + d + d² = {1 + ctx.d_model + ctx.d_model**2} per key); use qk: separate or symmetric"
            )
        if self.normalization != "single" and self.form != "approximate":
            raise ValueError(f"normalization: {self.normalization} applies to form: approximate only (form is {self.form})")
        if self.chunk_size is not None and self.form not in ("approximate", "non_approximate"):
            raise ValueError(f"chunk_size applies to form: approximate or non_approximate only (form is {self.form})")
        if self.random_std != 1.0 and self.qk_source != "random":
            raise ValueError(f"random_std applies to qk_source: random only (qk_source is {self.qk_source})")
        if not self.static_positions and self.qk_source != "static":
            raise ValueError(f"static_positions applies to qk_source: static only (qk_source is {self.qk_source})")
        if self.detach_stream and self.qk_source not in FIXED_SOURCES:
            raise ValueError(f"detach_stream applies to qk_source: random or fixed_text only (qk_source is {self.qk_source})")
        if self.qk_source == "fixed_text" and not getattr(ctx, "token_inputs", True):
            raise ValueError("qk_source: fixed_text embeds one fixed real token sequence, but this task feeds vectors, not tokens; use qk_source: random")
        width = ctx.d_model if self.qk == "collapsed" else (self.qk_dim or ctx.d_model // H)
        if getattr(ctx, "positions", None) == "rope" and self.form != "non_approximate" and width % 2:
            raise ValueError(f"positions: rope rotates pairs of query/key channels, so their width ({width}) must be even")



@hookimpl
def register_mixers(register: Any) -> None:
    register(
        "attention",
        build="deconstruct.builtin._attention:Attention",
        options=AttentionOptions,
        summary="multi-head attention (standard by default); qk_source, form, qk, vo, kv_heads are principle switches",
        paper="Vaswani et al. 2017, arXiv 1706.03762; Ainslie et al. 2023, arXiv 2305.13245; "
        "Xue et al. 2025, arXiv 2510.11602; Bermeitinger et al. 2024, arXiv 2410.13732",
        patterns=("causal_self", "noncausal_self"),
    )
