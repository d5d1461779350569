"""The ``rectified`` mixer: block-sparse top-k attention with the two rectifications of its normaliser
(Liu et al. 2025, rectified sparse attention): IPAR and GAPR, each a switch.

Keys are cut into blocks of S tokens (``block_size``, default ⌈√T⌉) with pooled keys k̄_p and values v̄_p
(block means). Each query scores the blocks, s̄_ip = q_i·k̄_p/√d_h, keeps its own block (its prefix when
causal) plus the ``top_k`` − 1 best other (causal: earlier) blocks, and attends exactly to their tokens.
Plain block-sparse attention renormalises over the kept tokens only, Z_kept = Σ_{j kept} e^{s_ij}, so
every query's kept weights sum to one however much mass the dropped blocks held. The pooled estimate of a
dropped block's mass is m̂_ip = |p|·e^{s̄_ip} (the block's size times its pooled score), and

- ``ipar`` (in-place attention rescaling): divide the kept part by Z_kept + Σ_{p dropped} m̂_ip instead of
  Z_kept — the kept blocks then carry their estimated true share of the mass, not all of it;
- ``gapr`` (global approximation of the pruned remainder): add Σ_{p dropped} m̂_ip·v̄_p / (Z_kept + Σ m̂_ip),
  the pooled approximation of what the dropped blocks would have contributed.

Both on: a softmax over [kept tokens, dropped blocks as pooled pseudo-tokens of multiplicity |p|]. Neither:
plain block-sparse top-k. ``gapr`` without ``ipar`` keeps the kept weights summing to one and adds the
dropped part on top (total weight above one): the switch isolates each term, which is what a study compares.
With every block kept (top_k ≥ number of blocks) nothing is dropped, both corrections vanish and the
mixer is exactly full attention — IPAR and GAPR are the identity there.

Cost: block scores O(T·(T/S)·d_h), attention O(T·top_k·S·d_h): O(T√T) for S = √T. Adaptation to causal
modelling: the query's own block is always kept (only its prefix is attended) and only earlier, complete
blocks can be dropped, so the pooled terms never see the future.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from deconstruct.hookspecs import hookimpl


class RectifiedOptions(BaseModel):
    """Options of the ``rectified`` mixer: ``top_k`` 4 blocks per query (the own one included), blocks of
    ``block_size`` tokens (default ⌈√T⌉), ``ipar`` and ``gapr`` on (off, off: plain block-sparse)."""

    model_config = ConfigDict(extra="forbid")

    top_k: int = Field(4, ge=1, description="key blocks kept per query, its own block included")
    block_size: int | None = Field(None, ge=1, description="S: tokens per block; default ⌈√T⌉")
    ipar: bool = Field(True, description="rescale the kept blocks by the pooled estimate of the dropped mass")
    gapr: bool = Field(True, description="add the pooled approximation of the dropped blocks")

    def check(self, ctx: Any) -> None:
        from deconstruct.builtin.attention import AttentionOptions

        AttentionOptions().check(ctx)



@hookimpl
def register_mixers(register: Any) -> None:
    register(
        "rectified",
        build="deconstruct.builtin._rectified:RectifiedBlockSparseAttention",
        options=RectifiedOptions,
        summary="block-sparse top-k attention with IPAR (rescale kept mass) and GAPR (pooled dropped blocks) switches",
        paper="Liu et al. 2025, rectified sparse attention (IPAR / GAPR)",
        patterns=("causal_self", "noncausal_self"),
    )
