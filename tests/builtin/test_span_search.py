"""The ``span_search`` mixer (superlinear multi-step attention): conformance (causality, gradients incl. the
router through the gate), parameter count, a written-out search-attend-gate reference, one span = full
attention, and sub-quadratic cost."""

from __future__ import annotations

import math
from functools import partial

import _mixer_helpers as helpers
import pytest
import torch

from deconstruct.builtin import span_search
from deconstruct.builtin._attention import Attention
from deconstruct.builtin._span_search import SpanSearchAttention
from deconstruct.builtin.attention import AttentionOptions
from deconstruct.builtin.span_search import SpanSearchOptions
from deconstruct.testing import MixerConformance, check_light_import, check_mixer


class TestSpanSearchConformance(MixerConformance):
    mixer_name = "span_search"
    plugins = (span_search,)
    options = {"top_k": 2, "span": 5}


make_ctx = partial(helpers.make_ctx, d=16, heads=4, T=14)
x_in = partial(helpers.seeded_input, B=2, T=14, d=16)


def make(options: dict, causal: bool = True, positions: str = "learned") -> SpanSearchAttention:
    return helpers.build_mixer(SpanSearchAttention, SpanSearchOptions, options,
                               make_ctx(causal=causal, positions=positions))


def reference(m, x, S, top_k, causal):
    """Per (batch, head, query), written out: route every candidate span, keep the own span and the best
    top_k − 1 others, softmax inside each, gate with the softmax of the kept spans' router scores."""
    B, T, d = x.shape
    H, D = m.H, m.D
    q, k, v = m._project(x, None)
    spans = [list(range(s, min(s + S, T))) for s in range(0, T, S)]
    out = torch.zeros(B, H, T, D, dtype=x.dtype)
    for b in range(B):
        for h in range(H):
            for i in range(T):
                r = i // S
                rq = m.router(q[b, h, i])
                own = [j for j in spans[r] if j <= i or not causal]
                score = {p: rq @ k[b, h, spans[p]].mean(0) / math.sqrt(D) for p in range(len(spans))}
                score[r] = rq @ k[b, h, own].mean(0) / math.sqrt(D)
                others = [p for p in range(len(spans)) if p != r and (p < r or not causal)]
                kept = [r] + sorted(others, key=lambda p: -float(score[p]))[: top_k - 1]
                g = torch.stack([score[p] for p in kept]).softmax(0)
                for gp, p in zip(g, kept, strict=True):
                    keys = own if p == r else spans[p]
                    a = torch.stack([q[b, h, i] @ k[b, h, j] for j in keys]).div(math.sqrt(D)).softmax(0)
                    out[b, h, i] += gp * (a[:, None] * v[b, h, keys]).sum(0)
    return m._output(out)


def test_hook_module_imports_no_torch():
    check_light_import("deconstruct.builtin.span_search")


def test_noncausal_conforms():
    check_mixer("span_search", {"top_k": 2, "span": 4}, plugins=(span_search,), checks=("shape", "gradients", "spec"),
                task={"name": "cloze", "corpus": "stdlib", "max_bytes": 50_000})


def test_parameter_count():
    m = make({})
    assert sum(p.numel() for p in m.parameters()) == 4 * 16 * 16 + 4 * 4  # W_Q, W_K, W_V, W_O + W_r (d_h²)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize(("S", "top_k"), [(4, 2), (3, 3), (5, 1)])
def test_equals_written_out_reference(causal, S, top_k):
    m = make({"top_k": top_k, "span": S}, causal=causal)
    x = x_in()
    with torch.no_grad():
        torch.testing.assert_close(m(x), reference(m, x, S, top_k, causal))


@pytest.mark.parametrize("causal", [True, False])
def test_one_span_is_full_attention(causal):
    m = make({"span": 14}, causal=causal, positions="rope").float()
    ref = Attention(make_ctx(causal=causal, positions="rope"), AttentionOptions())
    ref.load_state_dict(m.state_dict(), strict=False)
    x = x_in().float()
    torch.testing.assert_close(m(x), ref(x), atol=1e-6, rtol=0)


def test_mixing_matrix_reproduces_forward():
    m = make({"top_k": 2, "span": 4})
    x = x_in()
    A = m.attention_weights(x)
    torch.testing.assert_close(A.sum(-1), torch.ones_like(A.sum(-1)))  # a gated mixture of softmaxes
    assert ((A[:, :, 13] > 0).sum(-1) == 2 + 4).all()  # own span {12, 13} + one span of 4
    _, _, v = m._project(x, None)
    torch.testing.assert_close(m._output(A @ v), m(x))


def test_cost_is_subquadratic():
    m = make({})
    base = 2 * 4 * 16 * 16
    f = [m.flops_per_token(T) - base for T in (256, 1024, 4096)]
    assert 1.6 < f[1] / f[0] < 2.6 and 1.6 < f[2] / f[1] < 2.6
