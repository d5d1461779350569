"""The non-softmax forms (deconstruct.builtin._forms) against their written-out definitions."""

from __future__ import annotations

import math

import pytest
import torch

from deconstruct.builtin import _forms


def _qkv(B=2, H=3, T=13, d=4, dv=5, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    q, k = (torch.randn(B, H, T, d, generator=g, dtype=dtype) for _ in range(2))
    v = torch.randn(B, H, T, dv, generator=g, dtype=dtype)
    return q, k, v


# -- approximate ----------------------------------------------------------------------------------------------
def test_taylor_features_give_the_second_order_taylor_kernel():
    q, k, _ = _qkv()
    s = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    phi = _forms.taylor_features(q) @ _forms.taylor_features(k).transpose(-1, -2)
    assert _forms.taylor_features(q).shape[-1] == 1 + 4 + 16
    torch.testing.assert_close(phi, 1 + s + s * s / 2)


@pytest.mark.parametrize("normalization", ["single", "separate"])
@pytest.mark.parametrize("chunk_size", [1, 3, 5, 64])
def test_taylor_parallel_equals_recurrent(normalization, chunk_size):
    q, k, v = _qkv()
    parallel = _forms.taylor_attention(q, k, v, causal=True, normalization=normalization, chunk_size=chunk_size)
    recurrent = _forms.taylor_attention_recurrent(q, k, v, normalization=normalization)
    torch.testing.assert_close(parallel, recurrent, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("normalization", ["single", "separate"])
@pytest.mark.parametrize("causal", [True, False])
def test_taylor_equals_its_weight_matrix(normalization, causal):
    q, k, v = _qkv(T=10)
    out = _forms.taylor_attention(q, k, v, causal=causal, normalization=normalization, chunk_size=4)
    ref = _forms.taylor_weights(q, k, causal, normalization) @ v
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)


def test_taylor_single_normaliser_written_out():
    """out_i = Σ_{j≤i} (1 + s_ij + s_ij²/2) v_j / Σ_{j≤i} (1 + s_ij + s_ij²/2), s = q·k/√d, by a loop."""
    q, k, v = _qkv(B=1, H=1, T=7)
    out = _forms.taylor_attention(q, k, v, chunk_size=2)
    d = q.shape[-1]
    for i in range(7):
        s = (k[0, 0, : i + 1] @ q[0, 0, i]) / math.sqrt(d)
        w = 1 + s + s * s / 2
        torch.testing.assert_close(out[0, 0, i], (w[:, None] * v[0, 0, : i + 1]).sum(0) / w.sum())


def test_taylor_separate_normalises_each_order_on_its_own():
    """The paper's normalisation: each Taylor order's causal weights (1, s, s²/2 with s = q·k/√d) divided by
    their own row sum, so every order's rows sum to 1 and the combined map's rows sum to 3."""
    q, k, v = _qkv(T=9)
    T = q.shape[-2]
    s = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    mask = torch.ones(T, T, dtype=torch.bool).tril()
    orders = [torch.ones_like(s), s, s * s / 2]
    per_order = [torch.where(mask, w, 0.0) for w in orders]
    per_order = [w / w.sum(-1, keepdim=True) for w in per_order]
    for w in per_order:
        torch.testing.assert_close(w.sum(-1), torch.ones_like(w.sum(-1)))
    expected = sum(per_order)
    weights = _forms.taylor_weights(q, k, causal=True, normalization="separate")
    torch.testing.assert_close(weights, expected)
    torch.testing.assert_close(weights.sum(-1), torch.full_like(weights.sum(-1), 3.0))
    out = _forms.taylor_attention(q, k, v, causal=True, normalization="separate", chunk_size=4)
    torch.testing.assert_close(out, expected @ v)


def test_approximate_defaults_to_the_single_normaliser():
    """MECHANISMS.md: offer both, default to the single normaliser (the per-order one diverges in training)."""
    from deconstruct.builtin.attention import AttentionOptions

    assert AttentionOptions(form="approximate").normalization == "single"
    assert AttentionOptions(form="approximate", normalization="separate").normalization == "separate"
    assert AttentionOptions(form="approximate", normalization="single").normalization == "single"
    assert AttentionOptions().normalization == "single"  # softmax: the option does not apply


def test_taylor_fp32_close_to_fp64():
    q, k, v = _qkv(T=40)
    ref = _forms.taylor_attention(q, k, v, chunk_size=8)
    out = _forms.taylor_attention(q.float(), k.float(), v.float(), chunk_size=8)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.double(), ref, rtol=1e-4, atol=1e-5)


# -- non_approximate ------------------------------------------------------------------------------------------
def _prefix_softmax_definition(s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The O(T²) definition: out_i = Σ_{j≤i} e^{s_j} v_j / Σ_{j≤i} e^{s_j} (shifted by max_{j≤i} s_j)."""
    out = torch.empty(*s.shape, v.shape[-1], dtype=torch.float64)
    s, v = s.double(), v.double()
    for i in range(s.shape[-1]):
        w = torch.exp(s[..., : i + 1] - s[..., : i + 1].max(-1, keepdim=True).values)
        out[..., i, :] = (w.unsqueeze(-1) * v[..., : i + 1, :]).sum(-2) / w.sum(-1, keepdim=True)
    return out


@pytest.mark.parametrize("chunk_size", [1, 4, 6, 64])
def test_prefix_softmax_equals_definition(chunk_size):
    g = torch.Generator().manual_seed(1)
    s = torch.randn(2, 3, 13, generator=g, dtype=torch.float64) * 3
    v = torch.randn(2, 3, 13, 5, generator=g, dtype=torch.float64)
    out = _forms.prefix_softmax(s, v, causal=True, chunk_size=chunk_size)
    torch.testing.assert_close(out, _prefix_softmax_definition(s, v), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(out, _forms.prefix_softmax_weights(s) @ v, rtol=1e-10, atol=1e-10)


def test_prefix_softmax_is_stable_for_huge_scores():
    """Scores spanning ±1000 overflow a naive exp in fp32 and fp64; the running-max form does not."""
    g = torch.Generator().manual_seed(2)
    s = torch.randn(1, 2, 20, generator=g) * 1000
    s[0, 0, 5] = 3000.0  # a late maximum far above everything before it
    v = torch.randn(1, 2, 20, 3, generator=g)
    out = _forms.prefix_softmax(s, v, chunk_size=4)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.double(), _prefix_softmax_definition(s, v), rtol=1e-5, atol=1e-5)
    s.requires_grad_(True)
    _forms.prefix_softmax(s, v, chunk_size=4).sum().backward()
    assert torch.isfinite(s.grad).all()


def test_prefix_softmax_noncausal_is_global_softmax():
    g = torch.Generator().manual_seed(3)
    s, v = torch.randn(1, 2, 6, generator=g, dtype=torch.float64), torch.randn(1, 2, 6, 3, generator=g, dtype=torch.float64)
    out = _forms.prefix_softmax(s, v, causal=False)
    ref = (s.softmax(-1).unsqueeze(-1) * v).sum(-2, keepdim=True).expand_as(out)
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(out, _forms.prefix_softmax_weights(s, causal=False) @ v)


def test_forms_gradcheck():
    q, k, v = (t.requires_grad_(True) for t in _qkv(B=1, H=2, T=6, d=3, dv=2))
    for normalization in ("single", "separate"):
        assert torch.autograd.gradcheck(
            lambda q, k, v, n=normalization: _forms.taylor_attention(q, k, v, normalization=n, chunk_size=4), (q, k, v)
        )
    s = torch.randn(1, 2, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda s, v: _forms.prefix_softmax(s, v, chunk_size=4), (s, v))
    for fn in ("sigmoid", "relu"):
        assert torch.autograd.gradcheck(lambda q, k, v, fn=fn: _forms.elementwise_attention(q, k, v, fn), (q, k, v))


# -- sigmoid / relu -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fn", ["sigmoid", "relu"])
def test_elementwise_written_out(fn):
    q, k, v = _qkv(B=1, H=1, T=5, d=4, dv=2)
    out = _forms.elementwise_attention(q, k, v, fn, causal=True)
    f = torch.sigmoid if fn == "sigmoid" else torch.relu
    for i in range(5):
        w = f(k[0, 0, : i + 1] @ q[0, 0, i] / 2.0) / (i + 1)  # scale 1/√4, divided by the keys seen
        torch.testing.assert_close(out[0, 0, i], (w[:, None] * v[0, 0, : i + 1]).sum(0))
    full = _forms.elementwise_attention(q, k, v, fn, causal=False)
    w = f(q[0, 0] @ k[0, 0].T / 2.0) / 5
    torch.testing.assert_close(full[0, 0], w @ v[0, 0])
