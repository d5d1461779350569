"""The ``window`` mixer (sliding / dilated window attention, Hassani et al. NAT / DiNAT): conformance,
parameter count, a written-out masked reference, the full-window limit, and locality."""

from __future__ import annotations

import math
from functools import partial

import _mixer_helpers as helpers
import pytest
import torch
import torch.nn.functional as F

from deconstruct.builtin import window
from deconstruct.builtin._attention import Attention
from deconstruct.builtin._window import WindowAttention, mean_span
from deconstruct.builtin.attention import AttentionOptions
from deconstruct.builtin.window import WindowOptions
from deconstruct.spec import MixerContext
from deconstruct.testing import MixerConformance, check_light_import, check_mixer


class TestWindowConformance(MixerConformance):
    mixer_name = "window"
    plugins = (window,)
    options = {"size": 4, "dilation": 2}


make_ctx = partial(helpers.make_ctx, d=16, heads=4, T=12)
x_in = partial(helpers.seeded_input, B=2, T=12, d=16)


def make(options: dict, ctx: MixerContext | None = None, seed: int = 0) -> WindowAttention:
    return helpers.build_mixer(WindowAttention, WindowOptions, options, ctx or make_ctx(), seed)


def reference(m: WindowAttention, x: torch.Tensor, w: int, dil: int, causal: bool) -> torch.Tensor:
    """Written out: per query i, the explicit list of window keys, softmax over them, then W_O."""
    B, T, d = x.shape
    H, D = m.H, m.D
    q, k, v = m.qkv(x).split(d, dim=-1)
    q, k, v = (t.view(B, T, H, D) for t in (q, k, v))
    out = torch.zeros(B, T, H, D, dtype=x.dtype)
    for i in range(T):
        offsets = range(0, w) if causal else range(-(w // 2), w // 2 + 1)
        keys = [i - o * dil for o in offsets] if causal else [i + o * dil for o in offsets]
        keys = [j for j in keys if 0 <= j < T]
        s = torch.einsum("bhd,bjhd->bhj", q[:, i], k[:, keys]) / math.sqrt(D)
        out[:, i] = torch.einsum("bhj,bjhd->bhd", s.softmax(-1), v[:, keys])
    return m.out_proj(out.reshape(B, T, d))


def test_hook_module_imports_no_torch():
    check_light_import("deconstruct.builtin.window")


def test_defaults_conform():
    check_mixer("window", {}, plugins=(window,), checks=("shape", "causal", "gradients"))


def test_noncausal_conforms():
    """The non-causal pattern (cloze task): builds, keeps shape, gets gradients, passes the spec checks."""
    check_mixer("window", {"size": 5, "dilation": 2}, plugins=(window,), checks=("shape", "gradients", "spec"),
                task={"name": "cloze", "corpus": "stdlib", "max_bytes": 50_000})


@pytest.mark.parametrize("bias", [False, True])
def test_parameter_count(bias):
    d = 16
    m = make({}, make_ctx(d=d, bias=bias))
    assert sum(p.numel() for p in m.parameters()) == 4 * d * d + (4 * d if bias else 0)  # W_Q, W_K, W_V, W_O


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize(("w", "dil"), [(1, 1), (3, 1), (4, 2), (3, 3), (6, 1), (20, 1)])
def test_equals_written_out_reference(causal, w, dil):
    m = make({"size": w, "dilation": dil}, make_ctx(causal=causal))
    x = x_in()
    ref = reference(m, x, w, dil, causal)
    torch.testing.assert_close(m(x), ref)
    # attention_weights reproduces the forward: out = W_O·concat_h(A_h·V_h)
    _, _, v = m._project(x, None)
    torch.testing.assert_close(m._output(m.attention_weights(x).to(v.dtype) @ v), ref)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("positions", ["learned", "rope"])
def test_full_window_is_standard_attention(causal, positions):
    T = 12
    ctx = make_ctx(T=T, causal=causal, positions=positions)
    m = make({"size": 2 * T + 1}, ctx).float()  # non-causal ±⌊w/2⌋ must also cover every key
    torch.manual_seed(5)
    ref = Attention(ctx, AttentionOptions())
    m.load_state_dict(ref.state_dict())  # the same q/k/v/out weights
    x = x_in(T=T).float()
    torch.testing.assert_close(m(x), ref(x), atol=1e-6, rtol=0)


@pytest.mark.parametrize("causal", [True, False])
def test_token_outside_window_has_no_effect(causal):
    w, dil, T = 3, 2, 12
    m = make({"size": w, "dilation": dil}, make_ctx(T=T, causal=causal))
    x = x_in(T=T)
    y = m(x)
    i = 8  # causal window of 8: keys 8, 6, 4; non-causal: 6, 8, 10
    outside = [j for j in range(T) if j not in ((4, 6, 8) if causal else (6, 8, 10))]
    for j in outside:
        x2 = x.clone()
        x2[:, j] += 3 * torch.randn(x2[:, j].shape, generator=torch.Generator().manual_seed(j), dtype=x.dtype)
        assert torch.equal(m(x2)[:, i], y[:, i]), f"key {j} outside the window changed query {i}"
    x2 = x.clone()
    x2[:, 6] += 1.0  # inside the window: it must matter
    assert not torch.allclose(m(x2)[:, i], y[:, i])


def test_mask_is_cached():
    m = make({"size": 4})
    a = m.mask(12, torch.device("cpu"))
    assert m.mask(12, torch.device("cpu")) is a
    assert m.mask(6, torch.device("cpu")).shape == (6, 6)
    assert "_masks" not in dict(m.state_dict())


def test_sdpa_with_mask_matches_direct_call():
    m = make({"size": 3, "dilation": 2}).float()
    x = x_in().float()
    q, k, v = m._project(x, None)
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=m.mask(12, x.device))
    torch.testing.assert_close(m(x), m._output(y))


def test_flops_and_span():
    T, w = 12, 4
    assert mean_span(T, w, 1, True) == sum(min(w, i + 1) for i in range(T)) / T
    assert mean_span(T, 100, 1, True) == (T + 1) / 2  # the full causal span
    assert mean_span(T, 3, 2, False) == sum(
        len([j for j in (i - 2, i, i + 2) if 0 <= j < T]) for i in range(T)) / T
    assert mean_span(T, 2 * T + 1, 1, False) == T
    for causal in (True, False):  # equals the mask's mean row count
        for w, dil in ((3, 1), (4, 2), (5, 3)):
            mask = make({"size": w, "dilation": dil}, make_ctx(T=T, causal=causal)).mask(T, torch.device("cpu"))
            assert mean_span(T, w, dil, causal) == pytest.approx(mask.sum().item() / T)
    d, h = 16, 4
    m = make({"size": w}, make_ctx(d=d, heads=h, T=T))
    assert m.flops_per_token(T) == int(2 * 4 * d * d + 2 * mean_span(T, w, 1, True) * h * 2 * (d // h))


def test_checks():
    with pytest.raises(ValueError, match="dilation"):
        WindowOptions(size=3, dilation=12).check(make_ctx(T=12))
    with pytest.raises(ValueError, match="rope"):
        WindowOptions().check(make_ctx(d=24, heads=8, positions="rope"))
    WindowOptions(size=1, dilation=50).check(make_ctx(T=12))  # size 1 ignores dilation: allowed
