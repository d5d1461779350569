"""The ``sinks`` mixer (learnable sink logit / sink token): conformance, parameter count, a written-out
softmax with the sink column, and b_h → −∞ = standard attention."""

from __future__ import annotations

import math
from functools import partial

import _mixer_helpers as helpers
import pytest
import torch

from deconstruct.builtin import sinks
from deconstruct.builtin._attention import Attention
from deconstruct.builtin._sinks import SinkAttention
from deconstruct.builtin.attention import AttentionOptions
from deconstruct.builtin.sinks import SinkOptions
from deconstruct.testing import MixerConformance, check_light_import, check_mixer


class TestSinkLogitConformance(MixerConformance):
    mixer_name = "sinks"
    plugins = (sinks,)
    signed_weights = True  # rows over the real tokens sum to 1 − the sink's share


class TestSinkTokenConformance(MixerConformance):
    mixer_name = "sinks"
    plugins = (sinks,)
    options = {"sink": "token"}
    signed_weights = True  # rows over the real tokens sum to 1 − the sink's share


make_ctx = partial(helpers.make_ctx, d=16, heads=4, T=10)
x_in = partial(helpers.seeded_input, B=2, T=10, d=16)


def make(options: dict, causal: bool = True, positions: str = "learned") -> SinkAttention:
    return helpers.build_mixer(SinkAttention, SinkOptions, options, make_ctx(causal=causal, positions=positions))


def reference(m: SinkAttention, x: torch.Tensor, causal: bool) -> torch.Tensor:
    B, T, d = x.shape
    H, D = m.H, m.D
    q, k, v = m._project(x, None)
    out = torch.zeros(B, H, T, D, dtype=x.dtype)
    for b in range(B):
        for h in range(H):
            for i in range(T):
                keys = list(range(i + 1)) if causal else list(range(T))
                s = [q[b, h, i] @ k[b, h, j] / math.sqrt(D) for j in keys]
                if m.sink == "logit":
                    s.append(m.sink_logit[h])
                    vals = torch.cat([v[b, h, keys], torch.zeros(1, D, dtype=x.dtype)])
                else:
                    s.append(q[b, h, i] @ m.sink_key[h] / math.sqrt(D))
                    vals = torch.cat([v[b, h, keys], m.sink_value[h][None]])
                out[b, h, i] = (torch.stack(s).softmax(0)[:, None] * vals).sum(0)
    return m._output(out)


def test_hook_module_imports_no_torch():
    check_light_import("deconstruct.builtin.sinks")


def test_noncausal_conforms():
    check_mixer("sinks", {"sink": "token"}, plugins=(sinks,), checks=("shape", "gradients", "spec"),
                task={"name": "cloze", "corpus": "stdlib", "max_bytes": 50_000})


@pytest.mark.parametrize(("sink", "extra"), [("logit", 4), ("token", 2 * 16)])
def test_parameter_count(sink, extra):
    assert sum(p.numel() for p in make({"sink": sink}).parameters()) == 4 * 16 * 16 + extra


@pytest.mark.parametrize("sink", ["logit", "token"])
@pytest.mark.parametrize("causal", [True, False])
def test_equals_written_out_reference(sink, causal):
    m = make({"sink": sink, "init_logit": 0.7} if sink == "logit" else {"sink": sink}, causal=causal)
    if sink == "token":
        with torch.no_grad():
            m.sink_key.normal_(0, 1)
            m.sink_value.normal_(0, 1)
    x = x_in()
    with torch.no_grad():
        torch.testing.assert_close(m(x), reference(m, x, causal))


@pytest.mark.parametrize("causal", [True, False])
def test_very_negative_sink_is_standard_attention(causal):
    m = make({"init_logit": -1e4}, causal=causal, positions="rope").float()
    ref = Attention(make_ctx(causal=causal, positions="rope"), AttentionOptions())
    ref.load_state_dict(m.state_dict(), strict=False)
    x = x_in().float()
    torch.testing.assert_close(m(x), ref(x), atol=1e-6, rtol=0)


def test_sink_share_grows_with_the_logit():
    x = x_in()
    shares = [make({"init_logit": b}).sink_share(x).mean().item() for b in (-2.0, 0.0, 2.0)]
    assert 0 < shares[0] < shares[1] < shares[2] < 1
    # query 0 sees itself and the sink: with b = 0 the sink's share is 1 / (1 + e^{s_00})
    m = make({"init_logit": 0.0})
    q, k, _ = m._project(x, None)
    s00 = (q[..., 0, :] * k[..., 0, :]).sum(-1) / math.sqrt(m.D)
    torch.testing.assert_close(m.sink_share(x)[..., 0], (1 / (1 + s00.exp())).float())


def test_checks():
    with pytest.raises(ValueError, match="init_logit"):
        SinkOptions(sink="token", init_logit=1.0).check(make_ctx())
