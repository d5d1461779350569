"""The ``biformer`` mixer (bi-level routing attention, Zhu et al. 2023): conformance, parameter count, a
written-out routing reference, the all-regions limit, and that unrouted tokens have no effect."""

from __future__ import annotations

import math
from functools import partial

import _mixer_helpers as helpers
import pytest
import torch

from deconstruct._errors import SpecError
from deconstruct.builtin import biformer
from deconstruct.builtin._attention import Attention
from deconstruct.builtin._biformer import BiLevelRoutingAttention, mean_keys, routing_flops
from deconstruct.builtin.attention import AttentionOptions
from deconstruct.builtin.biformer import BiFormerOptions
from deconstruct.spec import MixerContext, load_spec
from deconstruct.testing import MixerCase, MixerConformance, check_light_import, check_mixer, registry_with


class TestBiFormerConformance(MixerConformance):
    mixer_name = "biformer"
    plugins = (biformer,)
    options = {"region_size": 5, "top_k": 3}  # 32 tokens: 7 regions, the last of 2 tokens


make_ctx = partial(helpers.make_ctx, d=16, heads=4, T=14)
x_in = partial(helpers.seeded_input, B=2, T=14, d=16)


def make(options: dict, ctx: MixerContext | None = None, seed: int = 0) -> BiLevelRoutingAttention:
    return helpers.build_mixer(BiLevelRoutingAttention, BiFormerOptions, options, ctx or make_ctx(), seed)


def key_sets(q: torch.Tensor, k: torch.Tensor, S: int, top_k: int, causal: bool) -> list[list[int]]:
    """Written out for one (batch, head): q, k (T, D) → the sorted key list of every query."""
    T = q.shape[0]
    q, k = q.detach(), k.detach()
    regions = [list(range(s, min(s + S, T))) for s in range(0, T, S)]
    k_reg = [k[r].mean(0) for r in regions]
    sets = []
    for i in range(T):
        r = i // S
        if causal:
            q_bar = q[regions[r][0] : i + 1].mean(0)  # the region's queries up to i
            earlier = sorted(range(r), key=lambda s: -float(q_bar @ k_reg[s]))
            kept = {r, *earlier[: top_k - 1]}
        else:
            q_bar = q[regions[r]].mean(0)
            kept = set(sorted(range(len(regions)), key=lambda s: -float(q_bar @ k_reg[s]))[:top_k])
        sets.append([j for s in sorted(kept) for j in regions[s] if not causal or j <= i])
    return sets


def reference(m: BiLevelRoutingAttention, x: torch.Tensor, S: int, top_k: int, causal: bool, shared: bool = True):
    """Per (batch, head, query): the explicit routed key set, softmax over it, then W_O. Shared routing (the
    paper's) routes on the full queries and keys (all heads side by side), per-head routing on each head's."""
    B, T, d = x.shape
    H, D = m.H, m.D
    q, k, v = m.qkv(x).split(d, dim=-1)
    q, k, v = (t.view(B, T, H, D) for t in (q, k, v))
    out = torch.zeros(B, T, H, D, dtype=x.dtype)
    all_sets = {}
    for b in range(B):
        for h in range(H):
            rq, rk = (q[b].reshape(T, d), k[b].reshape(T, d)) if shared else (q[b, :, h], k[b, :, h])
            sets = all_sets[b, h] = key_sets(rq, rk, S, top_k, causal)
            for i, keys in enumerate(sets):
                s = (k[b, keys, h] @ q[b, i, h]) / math.sqrt(D)
                out[b, i, h] = s.softmax(-1) @ v[b, keys, h]
    return m.out_proj(out.reshape(B, T, d)), all_sets


def test_hook_module_imports_no_torch():
    check_light_import("deconstruct.builtin.biformer")


def test_defaults_conform():
    check_mixer("biformer", {}, plugins=(biformer,), checks=("shape", "causal", "gradients"), seq_len=40)


def test_noncausal_conforms():
    """The non-causal pattern (cloze task): builds, keeps shape, gets gradients, passes the spec checks."""
    check_mixer("biformer", {"region_size": 5, "top_k": 2}, plugins=(biformer,),
                checks=("shape", "gradients", "spec"), task={"name": "cloze", "corpus": "stdlib", "max_bytes": 50_000})


@pytest.mark.parametrize("bias", [False, True])
def test_parameter_count(bias):
    d = 16
    m = make({}, make_ctx(d=d, bias=bias))
    assert sum(p.numel() for p in m.parameters()) == 4 * d * d + (4 * d if bias else 0)  # W_Q, W_K, W_V, W_O


@pytest.mark.parametrize("routing", ["shared", "per_head"])
@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize(("S", "top_k"), [(1, 1), (3, 1), (3, 2), (4, 3), (5, 2), (20, 1)])
def test_equals_written_out_reference(causal, S, top_k, routing):
    m = make({"region_size": S, "top_k": top_k, "routing": routing}, make_ctx(causal=causal))
    x = x_in()  # T = 14: a short last region for S = 3, 4, 5
    ref, sets = reference(m, x, S, top_k, causal, shared=routing == "shared")
    torch.testing.assert_close(m(x), ref)
    q, k, v = m._project(x, None)
    mask = m.attn_mask(q, k)
    for (b, h), rows in sets.items():  # the mask is exactly the written-out key sets
        assert [torch.nonzero(mask[b, h, i]).flatten().tolist() for i in range(len(rows))] == rows
    # attention_weights reproduces the forward: out = W_O·concat_h(A_h·V_h)
    torch.testing.assert_close(m._output(m.attention_weights(x).to(v.dtype) @ v), ref)


def test_routing_is_not_trivial():
    """With several regions and small top_k the heads route differently per head (the mask is not one fixed
    band), and with the paper's shared routing every head of a sequence reads the same regions."""
    m = make({"region_size": 2, "top_k": 2, "routing": "per_head"}, make_ctx(T=14))
    q, k, _ = m._project(x_in(), None)
    mask = m.attn_mask(q, k)
    assert len({tuple(mask[b, h].flatten().tolist()) for b in range(2) for h in range(4)}) > 1
    shared = make({"region_size": 2, "top_k": 2}, make_ctx(T=14))
    mask = shared.attn_mask(*shared._project(x_in(), None)[:2])
    for b in range(2):
        assert all(torch.equal(mask[b, h], mask[b, 0]) for h in range(4))
    assert not torch.equal(mask[0, 0], mask[1, 0])  # still input-dependent


@pytest.mark.parametrize("causal", [True, False])
def test_local_context_enhancement_is_a_depthwise_conv_on_v(causal):
    """lce: K adds Σ_j w_c[j]·v_c[t − K + 1 + j] + b_c per value channel c (causal: the K − 1 previous tokens
    and t; non-causal: centred), before W_O; H·D·(K + 1) parameters more than without it."""
    K = 3
    plain = make({"region_size": 3, "top_k": 2}, make_ctx(causal=causal))
    m = make({"region_size": 3, "top_k": 2, "lce": K}, make_ctx(causal=causal))
    assert sum(p.numel() for p in m.parameters()) - sum(p.numel() for p in plain.parameters()) == 16 * (K + 1)
    x = x_in()
    B, T, d = x.shape
    with torch.no_grad():
        m.lce.weight.normal_(), m.lce.bias.normal_()
    _, _, v = m.qkv(x).split(d, dim=-1)  # (B, T, H·D): channel c = h·D + i, as the heads are laid out
    w, bias = m.lce.weight[:, 0], m.lce.bias  # (H·D, K), (H·D,)
    conv = torch.zeros_like(v)
    for t in range(T):
        for j in range(K):
            src = t - (K - 1) + j if causal else t - (K - 1) // 2 + j
            if 0 <= src < T:
                conv[:, t] += w[:, j] * v[:, src]
    conv = conv + bias
    q, k, vh = m._project(x, None)
    y = m.dense_attention(q, k, vh)  # (B, H, T, D)
    expected = m._output(y + conv.view(B, T, 4, 4).transpose(1, 2))
    torch.testing.assert_close(m(x), expected)


def test_lce_keeps_causality():
    check_mixer("biformer", {"region_size": 5, "top_k": 2, "lce": 5}, plugins=(biformer,),
                checks=("shape", "causal", "gradients"), seq_len=20)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("positions", ["learned", "rope"])
@pytest.mark.parametrize(("S", "top_k"), [(3, 5), (4, 4), (14, 1), (1, 14)])
def test_all_regions_is_standard_attention(causal, positions, S, top_k):
    T = 14
    ctx = make_ctx(T=T, causal=causal, positions=positions)
    m = make({"region_size": S, "top_k": top_k}, ctx).float()  # top_k ≥ ⌈T/S⌉: every region kept
    torch.manual_seed(5)
    ref = Attention(ctx, AttentionOptions())
    m.load_state_dict(ref.state_dict())  # the same q/k/v/out weights
    x = x_in(T=T).float()
    torch.testing.assert_close(m(x), ref(x), atol=1e-6, rtol=0)


@pytest.mark.parametrize("causal", [True, False])
def test_token_in_unrouted_region_has_no_effect(causal):
    """A key token j ≠ i outside query i's routed regions (non-causal: its own region may be dropped, but
    x_i still makes the query) gets no gradient from y_i, and nudging it leaves y_i bit-identical."""
    S, top_k, T = 3, 2, 14
    m = make({"region_size": S, "top_k": top_k}, make_ctx(heads=1, T=T, causal=causal))  # one routing per query
    x = x_in(B=1, T=T).requires_grad_(True)
    q, k, _ = m._project(x, None)
    mask = m.attn_mask(q, k)
    y = m(x)
    checked = 0
    for i in (10, 12, 13):
        unrouted = [j for j in range(T) if not mask[0, 0, i, j] and j != i and (j < i or not causal)]
        routed = [j for j in range(T) if mask[0, 0, i, j]]
        assert unrouted and routed
        (g,) = torch.autograd.grad(y[:, i].sum(), x, retain_graph=True)
        for j in unrouted:  # no gradient path (routing is discrete), and a small nudge changes nothing
            assert g[:, j].abs().max() == 0, f"key {j} outside the routed regions reaches query {i}"
            x2 = x.detach().clone()
            x2[:, j] += 1e-3 * torch.randn(x2[:, j].shape, generator=torch.Generator().manual_seed(j), dtype=x.dtype)
            q2, k2, _ = m._project(x2, None)
            if torch.equal(m.attn_mask(q2, k2), mask):  # the nudge did not change the routing
                assert torch.equal(m(x2)[:, i], y[:, i].detach()), f"key {j} changed query {i}"
                checked += 1
        for j in routed:
            assert g[:, j].abs().max() > 0
    assert checked > 0


def test_causal_routing_ignores_later_tokens_of_the_region():
    """The region-prefix query: changing token i + 1 (same region) leaves query i's keys and output alone."""
    T = 14
    m = make({"region_size": 4, "top_k": 2}, make_ctx(T=T))  # 4 regions; each query keeps 2
    x = x_in(T=T)
    y = m(x)
    for i in (8, 9, 10):  # region 2 holds 8–11
        x2 = x.clone()
        x2[:, i + 1 :] = torch.randn(x2[:, i + 1 :].shape, generator=torch.Generator().manual_seed(i), dtype=x.dtype)
        torch.testing.assert_close(m(x2)[:, : i + 1], y[:, : i + 1], atol=0, rtol=0)


def test_flops_and_keys():
    T = 14
    for causal in (True, False):  # the mean number of routed keys equals the mask's mean row count
        for S, top_k in ((3, 2), (4, 3), (7, 1), (2, 20)):
            m = make({"region_size": S, "top_k": top_k}, make_ctx(T=T, causal=causal))
            q, k, _ = m._project(x_in(T=T), None)
            counts = m.attn_mask(q, k).sum(-1).double().mean(-1)  # (B, H)
            if causal or T % S == 0 or top_k >= -(-T // S):
                assert torch.allclose(counts, torch.tensor(mean_keys(T, S, top_k, causal), dtype=torch.float64))
            else:  # non-causal with a short last region: an upper bound
                assert (counts <= mean_keys(T, S, top_k, causal)).all()
    assert mean_keys(T, 100, 4, True) == (T + 1) / 2  # one region: full causal span
    assert mean_keys(T, 1, 3, True) == sum(min(3, i + 1) for i in range(T)) / T  # S = 1: 3 keys, own first
    d, h, S, top_k = 16, 4, 4, 2
    m = make({"region_size": S, "top_k": top_k}, make_ctx(d=d, heads=h, T=T))
    expected = 2 * 4 * d * d + routing_flops(T, S, h, d // h, True) + 2 * mean_keys(T, S, top_k, True) * h * 2 * (d // h)
    assert m.flops_per_token(T) == int(expected)
    full = Attention(make_ctx(d=d, heads=h, T=4096), AttentionOptions()).flops_per_token(4096)
    assert m.flops_per_token(4096) < full  # routing + 2 regions is far cheaper at long lengths


def test_checks():
    ctx = make_ctx()
    with pytest.raises(ValueError, match="region_size"):
        BiFormerOptions(region_size=0).check(ctx)
    with pytest.raises(ValueError, match="top_k"):
        BiFormerOptions(top_k=0).check(ctx)
    with pytest.raises(ValueError, match="rope"):
        BiFormerOptions().check(make_ctx(d=24, heads=8, positions="rope"))
    BiFormerOptions(region_size=100, top_k=100).check(ctx)  # one region: allowed (full attention)
    spec = MixerCase("biformer", {"top_k": 0}, registry=registry_with((biformer,))).spec()
    with pytest.raises(SpecError, match="top_k"):
        load_spec(spec, registry=registry_with((biformer,)))
