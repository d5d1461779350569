"""The ``reversed`` mixer (DependencyViT, Ding et al. 2023): conformance on the non-causal cloze task,
parameter count, a written-out sending reference, the transposed standard map, and the message gate."""

from __future__ import annotations

import math
from functools import partial

import _mixer_helpers as helpers
import pytest
import torch

from deconstruct.builtin import reversed as reversed_mixer
from deconstruct.builtin._attention import Attention
from deconstruct.builtin._reversed import ReversedAttention
from deconstruct.builtin.attention import AttentionOptions
from deconstruct.builtin.reversed import ReversedOptions
from deconstruct.testing import MixerConformance, check_light_import

CLOZE = {"name": "cloze", "corpus": "stdlib", "max_bytes": 50_000}


class TestReversedConformance(MixerConformance):
    mixer_name = "reversed"
    plugins = (reversed_mixer,)
    task = CLOZE
    signed_weights = True  # row j is what parent j receives: a sum over children, not a distribution


make_ctx = partial(helpers.make_ctx, d=16, heads=4, T=10, causal=False)
x_in = partial(helpers.seeded_input, B=2, T=10, d=16)


def make(positions: str = "learned", bias: bool = False) -> ReversedAttention:
    return helpers.build_mixer(ReversedAttention, ReversedOptions, {}, make_ctx(positions=positions, bias=bias))


def reference(m: ReversedAttention, x: torch.Tensor) -> torch.Tensor:
    """Per (batch, head, child i): child i picks parents with softmax_j(q_i·k_j) and adds s_ih·m_i·a_ij·v_i
    to each parent j."""
    B, T, d = x.shape
    H, D = m.H, m.D
    q, k, v = m._project(x, None)
    s = m.head_selector(x).softmax(-1)  # (B, T, H)
    g = torch.sigmoid(m.message_gate(x))[..., 0]  # (B, T)
    out = torch.zeros(B, H, T, D, dtype=x.dtype)
    for b in range(B):
        for h in range(H):
            for i in range(T):
                a = torch.stack([q[b, h, i] @ k[b, h, j] / math.sqrt(D) for j in range(T)]).softmax(0)
                for j in range(T):
                    out[b, h, j] += s[b, i, h] * g[b, i] * a[j] * v[b, h, i]
    return m._output(out)


def test_hook_module_imports_no_torch():
    check_light_import("deconstruct.builtin.reversed")


@pytest.mark.parametrize("bias", [False, True])
def test_parameter_count(bias):
    d, h = 16, 4
    expected = 4 * d * d + d * h + d + ((4 * d + h + 1) if bias else 0)
    assert sum(p.numel() for p in make(bias=bias).parameters()) == expected


def test_equals_written_out_reference():
    m = make()
    x = x_in()
    with torch.no_grad():
        torch.testing.assert_close(m(x), reference(m, x))


def test_is_the_transposed_standard_map():
    """The same weights in a standard (non-causal) Attention give A; reversed = W_O·concat((gates ⊙ A)ᵀ·V)."""
    m = make(positions="rope")
    std = Attention(make_ctx(positions="rope"), AttentionOptions()).double()
    std.load_state_dict(m.state_dict(), strict=False)
    x = x_in()
    A = std.attention_weights(x).double()  # (B, H, T, T)
    s = m.head_selector(x).softmax(-1).transpose(1, 2)  # (B, H, T)
    g = torch.sigmoid(m.message_gate(x))[..., 0]  # (B, T)
    _, _, v = std._project(x, None)
    expected = std._output((A * (s * g[:, None])[..., None]).transpose(-1, -2) @ v)
    torch.testing.assert_close(m(x), expected)


def test_closed_message_gate_sends_nothing():
    m = make(bias=True)
    with torch.no_grad():
        m.message_gate.weight.zero_()
        m.message_gate.bias.fill_(-1e4)  # every gate 0: nothing is sent, only W_O's bias remains
    x = x_in()
    y = m(x)
    torch.testing.assert_close(y, m.out_proj.bias.expand_as(y))


def test_causal_rejected():
    with pytest.raises(ValueError, match="causal"):
        ReversedOptions().check(make_ctx(causal=True))
