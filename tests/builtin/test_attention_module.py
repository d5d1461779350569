"""The attention mixer at the module level: every option's forward/backward, causality, gradients,
parameter counts, and the equivalences that prove the wiring."""

from __future__ import annotations

import math
from functools import partial

import _mixer_helpers as helpers
import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from deconstruct.builtin._attention import Attention
from deconstruct.builtin.attention import AttentionOptions
from deconstruct.spec import MixerContext

# Every value of every axis, and combinations of them (chunk_size 4 makes T = 12 span several chunks).
VARIANTS: dict[str, dict] = {
    "standard": {},
    "gqa": {"kv_heads": 1},
    "qk_dim": {"qk_dim": 4},
    "static": {"qk_source": "static"},
    "random": {"qk_source": "random"},
    "fixed_text": {"qk_source": "fixed_text", "detach_stream": True},
    "approximate": {"form": "approximate", "chunk_size": 4},
    "approximate_separate": {"form": "approximate", "normalization": "separate", "chunk_size": 5},
    "non_approximate": {"form": "non_approximate", "chunk_size": 4},
    "sigmoid": {"form": "sigmoid"},
    "relu": {"form": "relu"},
    "symmetric": {"qk": "symmetric"},
    "collapsed_qk": {"qk": "collapsed"},
    "frozen": {"qk": "frozen"},
    "collapsed_vo": {"vo": "collapsed"},
    "identity_vo": {"vo": "identity"},
    "collapsed_both": {"qk": "collapsed", "vo": "collapsed"},
    "approx_symmetric_identity": {"form": "approximate", "qk": "symmetric", "vo": "identity", "chunk_size": 4},
    "approx_gqa_qkdim": {"form": "approximate", "kv_heads": 1, "qk_dim": 2, "chunk_size": 4},
    "nonapprox_collapsed": {"form": "non_approximate", "qk": "collapsed", "vo": "collapsed", "chunk_size": 4},
    "sigmoid_frozen_gqa_random": {"form": "sigmoid", "qk": "frozen", "kv_heads": 1, "qk_source": "random"},
    "relu_collapsed_vo_static": {"form": "relu", "vo": "collapsed", "qk_source": "static"},
    "softmax_symmetric_static_identity": {"qk": "symmetric", "qk_source": "static", "vo": "identity"},
}


make_ctx = partial(helpers.make_ctx, d=8, heads=2, T=12)


def make(options: dict, ctx: MixerContext | None = None, seed: int = 0, dtype=torch.float64) -> Attention:
    return helpers.build_mixer(Attention, AttentionOptions, options, ctx or make_ctx(), seed, dtype)


def inputs(mixer: Attention, B=2, T=12, seed=1, dtype=torch.float64):
    """x (B, T, d) and the query/key stream its qk_source implies (None, (B, T, d) or (1, T, d))."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T, mixer.d, generator=g, dtype=dtype)
    qk = None
    if mixer.qk_source == "static":
        qk = torch.randn(B, T, mixer.d, generator=g, dtype=dtype)
    elif mixer.qk_source in ("random", "fixed_text"):
        qk = torch.randn(1, T, mixer.d, generator=g, dtype=dtype)
    return x, qk


def values(mixer: Attention, x, qk):
    return mixer._heads(mixer._project(x, qk)[2])


# -- forward / backward ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", VARIANTS)
def test_forward_backward(name):
    mixer = make(VARIANTS[name], dtype=torch.float32)
    x, qk = inputs(mixer, dtype=torch.float32)
    x.requires_grad_(True)
    y = mixer(x, qk)
    assert y.shape == x.shape and torch.isfinite(y).all()
    y.square().sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for n, p in mixer.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, n
        else:
            assert p.grad is None, n


@pytest.mark.parametrize("name", VARIANTS)
@pytest.mark.parametrize("causal", [True, False])
def test_forward_equals_its_attention_weights(name, causal):
    """Every form's fast path (SDPA, chunked Taylor, chunked prefix softmax, …) equals the O(T²) mixing
    matrix it reports, applied to its values and output map."""
    mixer = make(VARIANTS[name], make_ctx(causal=causal))
    x, qk = inputs(mixer)
    y = mixer(x, qk)
    ref = mixer._output(mixer.attention_weights(x, qk).to(x.dtype) @ values(mixer, x, qk))
    torch.testing.assert_close(y, ref, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", VARIANTS)
def test_causality(name):
    """Changing tokens after t (in x and in the q/k stream) never changes outputs at positions ≤ t."""
    mixer = make(VARIANTS[name])
    x, qk = inputs(mixer)
    y = mixer(x, qk)
    for t in (0, 4, 10):
        x2 = x.clone()
        x2[:, t + 1 :] += torch.randn_like(x2[:, t + 1 :])
        qk2 = None if qk is None else qk.clone()
        if qk2 is not None:
            qk2[:, t + 1 :] += torch.randn_like(qk2[:, t + 1 :])
        y2 = mixer(x2, qk2)
        torch.testing.assert_close(y2[:, : t + 1], y[:, : t + 1], rtol=1e-12, atol=1e-12)
        assert not torch.allclose(y2[:, t + 1 :], y[:, t + 1 :])


@pytest.mark.parametrize("name", VARIANTS)
def test_gradcheck(name):
    """float64 gradient check with respect to the input, the q/k stream and every trainable parameter."""
    mixer = make(VARIANTS[name], make_ctx(d=4, heads=2, T=6))
    x, qk = inputs(mixer, B=1, T=6)
    names = [n for n, p in mixer.named_parameters() if p.requires_grad]
    params = [p.detach().clone().requires_grad_(True) for n, p in mixer.named_parameters() if p.requires_grad]
    frozen = {n: p for n, p in mixer.named_parameters() if not p.requires_grad}
    args = [x.requires_grad_(True)] + ([qk.requires_grad_(True)] if qk is not None else []) + params

    def f(x, *rest):
        stream = rest[0] if qk is not None else None
        ps = rest[1:] if qk is not None else rest
        return functional_call(mixer, {**dict(zip(names, ps, strict=True)), **frozen}, (x, stream))

    assert torch.autograd.gradcheck(f, tuple(args), fast_mode=True)


@pytest.mark.parametrize("name", ["standard", "approximate", "sigmoid", "symmetric", "collapsed_qk", "static"])
def test_rope_variants_stay_causal_and_consistent(name):
    mixer = make(VARIANTS[name], make_ctx(positions="rope"))
    assert mixer.rotary is not None
    x, qk = inputs(mixer)
    y = mixer(x, qk)
    torch.testing.assert_close(y, mixer._output(mixer.attention_weights(x, qk) @ values(mixer, x, qk)))
    x2 = x.clone()
    x2[:, 6:] = 0
    torch.testing.assert_close(mixer(x2, qk)[:, :6], y[:, :6])


# -- parameter counts (Bermeitinger et al. 2024: the savings are the point) -------------------------------------
def n_params(mixer, trainable_only=False):
    return sum(p.numel() for p in mixer.parameters() if p.requires_grad or not trainable_only)


@pytest.mark.parametrize("heads", [1, 2, 4])
def test_parameter_counts(heads):
    d = 8
    ctx = make_ctx(d=d, heads=heads)
    count = {name: n_params(make(opts, ctx)) for name, opts in {
        "standard": {}, "symmetric": {"qk": "symmetric"}, "collapsed_qk": {"qk": "collapsed"},
        "frozen": {"qk": "frozen"}, "collapsed_vo": {"vo": "collapsed"}, "identity_vo": {"vo": "identity"},
        "collapsed_both": {"qk": "collapsed", "vo": "collapsed"}, "qk_dim": {"qk_dim": 3},
        "approximate": {"form": "approximate"}, "non_approximate": {"form": "non_approximate"},
        "random": {"qk_source": "random"}, "static": {"qk_source": "static"},
    }.items()}
    qk_std, vo_std = 2 * d * d, 2 * d * d  # W_Q, W_K: d×(h·d_h) each; W_V: d×(h·d_h), W_O: (h·d_h)×d
    assert count["standard"] == qk_std + vo_std == 4 * d * d
    assert count["symmetric"] == d * d + vo_std  # W_K = W_Q: the QK parameters halve
    assert count["collapsed_qk"] == heads * d * d + vo_std  # one d×d W_QK per head
    assert count["collapsed_vo"] == qk_std + heads * d * d  # one d×d W_VO per head
    assert count["collapsed_both"] == 2 * heads * d * d
    assert count["identity_vo"] == qk_std  # W_V = W_O = I: no parameters
    assert count["frozen"] == 4 * d * d
    assert n_params(make({"qk": "frozen"}, ctx), trainable_only=True) == vo_std  # W_Q, W_K not trained
    assert count["qk_dim"] == 2 * d * heads * 3 + vo_std
    assert count["approximate"] == count["non_approximate"] == count["random"] == count["static"] == count["standard"]
    # collapsing saves parameters only with one head: h·d² vs 2·d²
    if heads == 1:
        assert count["collapsed_qk"] < count["standard"] and count["collapsed_vo"] < count["standard"]
    else:
        assert count["collapsed_qk"] >= count["standard"] and count["collapsed_vo"] >= count["standard"]


def test_parameter_counts_with_bias_and_gqa():
    d, heads, g = 8, 4, 2
    D = d // heads
    assert n_params(make({}, make_ctx(d=d, heads=heads, bias=True))) == 4 * d * d + 3 * d + d
    assert n_params(make({"kv_heads": g}, make_ctx(d=d, heads=heads))) == d * (d + 2 * g * D) + d * d
    assert n_params(make({"qk": "symmetric"}, make_ctx(d=d, heads=heads, bias=True))) == 3 * d * d + 2 * d + d


# -- equivalences ----------------------------------------------------------------------------------------------
def test_explicit_defaults_equal_default_bit_for_bit():
    explicit = {"form": "softmax", "qk_source": "hidden", "qk": "separate", "vo": "separate"}
    a, b = make({}, dtype=torch.float32), make(explicit, dtype=torch.float32)
    assert [n for n, _ in a.named_parameters()] == ["qkv.weight", "out_proj.weight"]
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    x, _ = inputs(a, dtype=torch.float32)
    assert torch.equal(a(x), b(x))


@pytest.mark.parametrize("kv_heads", [None, 1])
def test_standard_equals_handwritten_causal_attention(kv_heads):
    mixer = make({"kv_heads": kv_heads} if kv_heads else {}, make_ctx(d=8, heads=2), dtype=torch.float32)
    x, _ = inputs(mixer, dtype=torch.float32)
    B, T, d = x.shape
    H, Hkv, D = 2, kv_heads or 2, 4
    Wq, Wk, Wv = mixer.qkv.weight.split([H * D, Hkv * D, Hkv * D])
    q = (x @ Wq.T).view(B, T, H, D).transpose(1, 2)
    k = (x @ Wk.T).view(B, T, Hkv, D).transpose(1, 2).repeat_interleave(H // Hkv, dim=1)
    v = (x @ Wv.T).view(B, T, Hkv, D).transpose(1, 2).repeat_interleave(H // Hkv, dim=1)
    scores = q @ k.transpose(-1, -2) / math.sqrt(D)
    scores = scores.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
    y = (scores.softmax(-1) @ v).transpose(1, 2).reshape(B, T, H * D) @ mixer.out_proj.weight.T
    torch.testing.assert_close(mixer(x), y, rtol=1e-5, atol=1e-6)


def test_symmetric_equals_separate_with_tied_keys():
    sep, sym = make({}), make({"qk": "symmetric"})
    d = sep.d
    Wq, _, Wv = sep.qkv.weight.detach().split([d, d, d])
    with torch.no_grad():
        sep.qkv.weight.copy_(torch.cat([Wq, Wq, Wv]))
        sym.qkv.weight.copy_(torch.cat([Wq, Wv]))
        sym.out_proj.weight.copy_(sep.out_proj.weight)
    x, _ = inputs(sep)
    torch.testing.assert_close(sym(x), sep(x))


def test_collapsed_qk_and_vo_equal_separate_with_product_weights():
    """W_QK^h = W_Q^h·W_K^hᵀ and W_VO^h = W_V^h·W_O^h reproduce standard attention exactly."""
    sep = make({})
    H, D = sep.H, sep.D
    Wq, Wk, Wv = sep.qkv.weight.detach().split([H * D] * 3)  # each (H·D, d)
    Wo = sep.out_proj.weight.detach()  # (d, H·D)
    Wqk = torch.cat([(Wk[h * D:(h + 1) * D].T @ Wq[h * D:(h + 1) * D]) for h in range(H)])  # rows: q_h = x·W_QK^h
    Wvo = torch.cat([Wo[:, h * D:(h + 1) * D] @ Wv[h * D:(h + 1) * D] for h in range(H)], dim=1)  # (d, H·d)
    x, _ = inputs(sep)
    for opts, weights in (
        ({"qk": "collapsed"}, {"qkv.weight": torch.cat([Wqk, Wv]), "out_proj.weight": Wo}),
        ({"vo": "collapsed"}, {"qkv.weight": torch.cat([Wq, Wk]), "out_proj.weight": Wvo}),
        ({"qk": "collapsed", "vo": "collapsed"}, {"qkv.weight": Wqk, "out_proj.weight": Wvo}),
    ):
        mixer = make(opts)
        mixer.load_state_dict(weights)
        torch.testing.assert_close(mixer(x), sep(x), rtol=1e-10, atol=1e-10)


def test_identity_vo_outputs_convex_combinations_per_channel():
    mixer = make({"vo": "identity"})
    x, _ = inputs(mixer)
    y = mixer(x)
    A = mixer.attention_weights(x)  # (B, H, T, T), rows sum to 1
    torch.testing.assert_close(A.sum(-1), torch.ones_like(A.sum(-1)))
    assert (A >= 0).all()
    xh = x.view(2, 12, 2, 4).transpose(1, 2)
    torch.testing.assert_close(y, (A @ xh).transpose(1, 2).reshape(2, 12, 8))
    assert (y <= x.cummax(1).values + 1e-12).all() and (y >= x.cummin(1).values - 1e-12).all()


def test_qk_from_another_stream_uses_the_same_weights():
    """static / random: Q, K are projected from the stream, V from x, with the one fused weight."""
    mixer = make({"qk_source": "static"})
    x, qk = inputs(mixer)
    std = make({})  # same seed, same weights
    # attention computed with Q, K from qk and V from x, by hand through F.scaled_dot_product_attention
    H, D = 2, 4
    Wq, Wk, Wv = std.qkv.weight.split([H * D] * 3)
    heads = lambda t: t.view(2, 12, H, D).transpose(1, 2)  # noqa: E731
    y = F.scaled_dot_product_attention(heads(qk @ Wq.T), heads(qk @ Wk.T), heads(x @ Wv.T), is_causal=True)
    torch.testing.assert_close(mixer(x, qk), std._output(y))
    # a batch-1 stream serves the whole batch
    rnd = make({"qk_source": "random"})
    x, stream = inputs(rnd)
    torch.testing.assert_close(rnd(x, stream), rnd(x, stream.expand(2, -1, -1)))


def test_flops_per_token():
    ctx = make_ctx(d=8, heads=2, T=12)
    std = make({}, ctx)
    assert std.flops_per_token(12) == 2 * 4 * 64 + 4 * (13 / 2) * 2 * 4  # unchanged standard formula
    ax = make({"form": "approximate"}, ctx)
    assert ax.flops_per_token(12) == 2 * 4 * 64 + 2 * (2 * 6.5 * (4 + 4 + 1))  # one chunk: no state
    state = 4 * 16 * 5 + 2 * 16 + 4 * 4 * 5 + 5  # Dqk = 4, E = Dv + 1 = 5
    assert ax.flops_per_token(1024) == 2 * 4 * 64 + 2 * (2 * 128.5 * 9 + state)  # 256-token chunks + state
    na = make({"form": "non_approximate"}, ctx)
    # linear in T: the same cost per token at any length beyond one chunk
    assert na.flops_per_token(4096) == na.flops_per_token(1024) < std.flops_per_token(1024)
