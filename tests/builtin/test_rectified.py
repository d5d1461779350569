"""The ``rectified`` mixer (block-sparse top-k with IPAR / GAPR): conformance, parameter count, a written-out
reference for each switch combination, every block kept = full attention (both corrections the identity),
and the mass each combination gives the dropped blocks."""

from __future__ import annotations

import math
from functools import partial

import _mixer_helpers as helpers
import pytest
import torch

from deconstruct.builtin import rectified
from deconstruct.builtin._attention import Attention
from deconstruct.builtin._rectified import RectifiedBlockSparseAttention
from deconstruct.builtin.attention import AttentionOptions
from deconstruct.builtin.rectified import RectifiedOptions
from deconstruct.testing import MixerConformance, check_light_import, check_mixer


class TestRectifiedConformance(MixerConformance):
    mixer_name = "rectified"
    plugins = (rectified,)
    options = {"top_k": 2, "block_size": 5}


make_ctx = partial(helpers.make_ctx, d=16, heads=4, T=14)
x_in = partial(helpers.seeded_input, B=2, T=14, d=16)
SWITCHES = [(False, False), (True, False), (False, True), (True, True)]


def make(options: dict, causal: bool = True, positions: str = "learned") -> RectifiedBlockSparseAttention:
    return helpers.build_mixer(RectifiedBlockSparseAttention, RectifiedOptions, options,
                               make_ctx(causal=causal, positions=positions))


def reference(m, x, S, top_k, ipar, gapr, causal):
    """Per (batch, head, query), written out with explicit block lists."""
    B, T, d = x.shape
    H, D = m.H, m.D
    q, k, v = m._project(x, None)
    blocks = [list(range(s, min(s + S, T))) for s in range(0, T, S)]
    out = torch.zeros(B, H, T, D, dtype=x.dtype)
    for b in range(B):
        for h in range(H):
            for i in range(T):
                r = i // S
                others = [p for p in range(len(blocks)) if p != r and (p < r or not causal)]
                pooled = {p: q[b, h, i] @ k[b, h, blocks[p]].mean(0) / math.sqrt(D) for p in others}
                kept = sorted(others, key=lambda p: -float(pooled[p]))[: top_k - 1]
                dropped = [p for p in others if p not in kept]
                keys = [j for j in blocks[r] if j <= i or not causal] + [j for p in kept for j in blocks[p]]
                e = torch.exp(torch.stack([q[b, h, i] @ k[b, h, j] / math.sqrt(D) for j in keys]))
                num = (e[:, None] * v[b, h, keys]).sum(0)
                mass = [len(blocks[p]) * torch.exp(pooled[p]) for p in dropped]
                z_all = e.sum() + sum(mass)
                y = num / (z_all if ipar else e.sum())
                if gapr:
                    y = y + sum(mm * v[b, h, blocks[p]].mean(0) for mm, p in zip(mass, dropped, strict=True)) / z_all
                out[b, h, i] = y
    return m._output(out)


def test_hook_module_imports_no_torch():
    check_light_import("deconstruct.builtin.rectified")


@pytest.mark.parametrize(("ipar", "gapr"), [(False, False), (True, False)])
def test_other_switches_conform(ipar, gapr):
    check_mixer("rectified", {"top_k": 2, "block_size": 4, "ipar": ipar, "gapr": gapr}, plugins=(rectified,),
                checks=("causal", "gradients"))


def test_noncausal_conforms():
    check_mixer("rectified", {"top_k": 2, "block_size": 4}, plugins=(rectified,), checks=("shape", "gradients", "spec"),
                task={"name": "cloze", "corpus": "stdlib", "max_bytes": 50_000})


def test_parameter_count():
    m = make({})
    assert sum(p.numel() for p in m.parameters()) == 4 * 16 * 16


@pytest.mark.parametrize(("ipar", "gapr"), SWITCHES)
@pytest.mark.parametrize("causal", [True, False])
def test_equals_written_out_reference(ipar, gapr, causal):
    m = make({"top_k": 2, "block_size": 4, "ipar": ipar, "gapr": gapr}, causal=causal)
    x = x_in()
    with torch.no_grad():
        torch.testing.assert_close(m(x), reference(m, x, 4, 2, ipar, gapr, causal))


@pytest.mark.parametrize(("ipar", "gapr"), SWITCHES)
@pytest.mark.parametrize("causal", [True, False])
def test_every_block_kept_is_full_attention(ipar, gapr, causal):
    """With nothing dropped IPAR and GAPR are the identity: the mixer is standard attention."""
    m = make({"top_k": 4, "block_size": 4, "ipar": ipar, "gapr": gapr}, causal=causal, positions="rope").float()
    ref = Attention(make_ctx(causal=causal, positions="rope"), AttentionOptions())
    ref.load_state_dict(m.state_dict())
    x = x_in().float()
    torch.testing.assert_close(m(x), ref(x), atol=1e-6, rtol=0)


def test_weight_each_combination_gives():
    """Row sums of the mixing matrix where blocks are dropped: plain and IPAR+GAPR sum to one, IPAR alone
    below one (the dropped share is left out), GAPR alone above one (added on top of a full kept share)."""
    x = x_in()
    T = x.shape[1]
    sums = {}
    for ipar, gapr in SWITCHES:
        A = make({"top_k": 2, "block_size": 4, "ipar": ipar, "gapr": gapr}).attention_weights(x)
        sums[ipar, gapr] = A.sum(-1)[..., 8:]  # queries in block 2 and 3: two or three earlier blocks, one kept
    one = torch.ones_like(sums[False, False])
    torch.testing.assert_close(sums[False, False], one)
    torch.testing.assert_close(sums[True, True], one)
    assert (sums[True, False] < 1).all() and (sums[False, True] > 1).all()
    assert T == 14


def test_cost_is_subquadratic():
    m = make({})
    f = [m.flops_per_token(T) - 2 * 4 * 16 * 16 for T in (256, 1024, 4096)]
    assert 1.6 < f[1] / f[0] < 2.6 and 1.6 < f[2] / f[1] < 2.6
