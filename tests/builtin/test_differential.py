"""The ``differential`` mixer (DiffAttn, Ye et al. 2024; GDA, Lim et al. 2025): conformance, parameter
count, λ_init per layer, and equivalences against written-out references."""

from __future__ import annotations

import math
import re
from functools import partial

import _mixer_helpers as helpers
import pytest
import torch
from torch import nn

from deconstruct._errors import SpecError
from deconstruct.builtin import differential as differential_plugin
from deconstruct.builtin._attention import Attention
from deconstruct.builtin._differential import DifferentialAttention, lambda_init
from deconstruct.builtin.attention import AttentionOptions
from deconstruct.builtin.differential import DifferentialOptions
from deconstruct.spec import MixerContext, load_spec
from deconstruct.testing import MixerCase, MixerConformance, check_light_import, check_mixer, registry_with

PLUGINS = (differential_plugin,)


# -- conformance ---------------------------------------------------------------------------------------------
class TestDifferentialConformance(MixerConformance):
    mixer_name = "differential"
    plugins = PLUGINS
    signed_weights = True  # rows are signal − λ·noise: they sum to 1 − λ and may be negative


def test_gda_conformance():
    check_mixer("differential", {"heads": 6, "signal_ratio": 2}, plugins=PLUGINS,
                checks=("shape", "causal", "gradients", "deterministic", "spec"))


def test_noncausal_and_rope_conformance():
    cloze = {"name": "cloze", "corpus": "stdlib", "max_bytes": 200_000}
    check_mixer("differential", {"heads": 6, "signal_ratio": 2}, plugins=PLUGINS, task=cloze, train_steps=2,
                checks=("shape", "gradients", "spec", "trains"))
    case = MixerCase("differential", {}, registry=registry_with(PLUGINS))
    spec = case.spec(positions="rope")
    resolved = load_spec(spec, registry=case.get_registry())
    ctx = resolved.context(resolved.layers[0])
    assert ctx.positions == "rope"
    mixer = DifferentialAttention(ctx, resolved.layers[0].options)
    assert mixer.rotary is not None
    x = torch.randn(2, 16, ctx.d_model)
    assert mixer(x).shape == x.shape


def test_hook_module_does_not_import_torch():
    check_light_import("deconstruct.builtin.differential")


# -- helpers ---------------------------------------------------------------------------------------------------
make_ctx = partial(helpers.make_ctx, d=16, heads=4, T=10, n_layers=4)


def make(options: dict | None = None, ctx: MixerContext | None = None, seed=0) -> DifferentialAttention:
    mixer = helpers.build_mixer(DifferentialAttention, DifferentialOptions, options, ctx or make_ctx(), seed)
    with torch.no_grad():  # a non-trivial RMSNorm gain, so the reference checks it is applied
        mixer.subln.weight.uniform_(0.5, 1.5)
    return mixer


def x_of(mixer, B=2, T=10, seed=1):
    return helpers.seeded_input(B, T, mixer.d, seed)


def reference(mixer: DifferentialAttention, x: torch.Tensor) -> torch.Tensor:
    """DiffAttn / GDA written out head by head, materialising both T×T maps (float64)."""
    B, T, d = x.shape
    D, H, r, Dv = mixer.D, mixer.H, mixer.r, mixer.Dv
    W = mixer.qkv.weight
    Wq1, Wq2, Wk1, Wk2, Wv = W.split(mixer.rows, dim=0)
    lam_init = 0.8 - 0.6 * math.exp(-0.3 * 0)  # layer_index 0
    lam = (torch.exp(mixer.lambda_q1 @ mixer.lambda_k1) - torch.exp(mixer.lambda_q2 @ mixer.lambda_k2)
           + lam_init)
    mask = torch.ones(T, T, dtype=torch.bool).tril() if mixer.causal else torch.ones(T, T, dtype=torch.bool)

    def softmax_map(q, k):  # q, k (B, T, D) → (B, T, T)
        s = q @ k.transpose(-1, -2) / math.sqrt(D)
        return s.masked_fill(~mask, float("-inf")).softmax(-1)

    heads = []
    for h in range(H):
        g = h // r  # the noise head of h's group
        a1 = softmax_map(x @ Wq1[h * D:(h + 1) * D].T, x @ Wk1[h * D:(h + 1) * D].T)
        a2 = softmax_map(x @ Wq2[g * D:(g + 1) * D].T, x @ Wk2[g * D:(g + 1) * D].T)
        v = x @ Wv[h * Dv:(h + 1) * Dv].T  # (B, T, D_v)
        head = (a1 - lam * a2) @ v
        rms = head.square().mean(-1, keepdim=True).add(1e-5).sqrt()
        heads.append(head / rms * mixer.subln.weight * (1 - lam_init))
    return torch.cat(heads, dim=-1) @ mixer.out_proj.weight.T


# -- equivalences ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("options", [{}, {"signal_ratio": 2, "heads": 6}, {"signal_ratio": 4, "heads": 10}])
def test_forward_equals_written_out_reference(options, causal):
    mixer = make(options, make_ctx(causal=causal))
    x = x_of(mixer)
    torch.testing.assert_close(mixer(x), reference(mixer, x), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("options", [{}, {"signal_ratio": 2, "heads": 6}])
def test_forward_equals_attention_weights_times_values(options):
    mixer = make(options)
    x = x_of(mixer)
    v = mixer._project(x, None)[4]  # (B, H, T, D_v)
    torch.testing.assert_close(mixer(x), mixer._output(mixer.attention_weights(x) @ v), rtol=1e-9, atol=1e-9)


def test_lambda_zero_is_plain_attention_on_the_first_halves():
    """With λ = 0 (λ_q1 = λ_k1 = 0 and exp(λ_q2·λ_k2) = 1 + λ_init) and the RMSNorm removed, the mixer is
    standard attention with Q_1, K_1 (width d_h), V (width 2·d_h) and W_O scaled by (1 − λ_init)."""
    ctx = make_ctx(layer_index=2)
    mixer = make({}, ctx)
    c = math.sqrt(math.log(1 + mixer.lambda_init))
    with torch.no_grad():
        for p in (mixer.lambda_q1, mixer.lambda_k1, mixer.lambda_q2, mixer.lambda_k2):
            p.zero_()
        mixer.lambda_q2[0] = mixer.lambda_k2[0] = c
    assert abs(mixer.lam().item()) < 1e-12
    mixer.subln = nn.Identity()

    H, D = mixer.H, mixer.D  # attention with H heads of value width 2·D and query/key width D
    actx = MixerContext(d_model=ctx.d_model, heads=H, layer_index=2, n_layers=4, max_seq_len=10, backend="sdpa")
    attn = Attention(actx, AttentionOptions(qk_dim=D)).double()
    Wq1, _, Wk1, _, Wv = mixer.qkv.weight.split(mixer.rows, dim=0)
    with torch.no_grad():
        attn.qkv.weight.copy_(torch.cat([Wq1, Wk1, Wv]))
        attn.out_proj.weight.copy_(mixer.out_proj.weight * (1 - mixer.lambda_init))
    x = x_of(mixer)
    torch.testing.assert_close(mixer(x), attn(x), rtol=1e-9, atol=1e-9)


def test_gda_equals_diffattn_with_duplicated_noise_heads():
    """GDA r = 2 (budget 6: 4 signal + 2 noise heads) is DiffAttn with 4 signal heads (budget 8) whose noise
    query/key halves repeat each shared noise head r times (values of the same width)."""
    gda = make({"heads": 6, "signal_ratio": 2})
    diff = make({"heads": 8, "signal_ratio": 1}, seed=1)
    assert (gda.H, gda.G, diff.H, diff.G) == (4, 2, 4, 4)
    diff.Dv = gda.Dv  # DiffAttn's default value width is 2·d_h; give it GDA's (6·d_h / 4) to compare maps
    diff.rows = (*diff.rows[:4], gda.rows[4])
    diff.qkv = nn.Linear(diff.d, sum(diff.rows), bias=False).double()
    diff.out_proj = gda.out_proj
    diff.subln = gda.subln
    D = gda.D
    gq1, gq2, gk1, gk2, gv = gda.qkv.weight.split(gda.rows, dim=0)
    dup = lambda w: w.view(gda.G, D, -1).repeat_interleave(2, dim=0).reshape(-1, w.shape[-1])  # noqa: E731
    with torch.no_grad():
        diff.qkv.weight.copy_(torch.cat([gq1, dup(gq2), gk1, dup(gk2), gv]))
        diff.out_proj.weight.copy_(gda.out_proj.weight)
        diff.subln.weight.copy_(gda.subln.weight)
        for name in ("lambda_q1", "lambda_k1", "lambda_q2", "lambda_k2"):
            getattr(diff, name).copy_(getattr(gda, name))
    x = x_of(gda)
    torch.testing.assert_close(gda(x), diff(x), rtol=1e-9, atol=1e-9)


def test_signal_ratio_one_is_diffattn_default():
    a, b = make({}), make({"signal_ratio": 1, "heads": 4})
    assert (a.H, a.G, a.r, a.Dv) == (2, 2, 1, 2 * a.D)
    x = x_of(a)
    torch.testing.assert_close(a(x), b(x), rtol=0, atol=0)


def test_gda_shares_the_noise_map():
    mixer = make({"heads": 6, "signal_ratio": 2})
    x = x_of(mixer)
    a1, a2, lam = mixer.maps(x)
    assert a1.shape == (2, 4, 10, 10) and a2.shape == (2, 2, 10, 10)
    w = mixer.attention_weights(x)
    assert w.shape == (2, 4, 10, 10)
    noise = (a1 - w) / lam  # the noise map each signal head subtracts
    torch.testing.assert_close(noise[:, 0], noise[:, 1])
    torch.testing.assert_close(noise[:, 2], noise[:, 3])
    torch.testing.assert_close(noise[:, 0], a2[:, 0])
    assert not torch.allclose(noise[:, 1], noise[:, 2])
    torch.testing.assert_close(w.sum(-1), (1 - lam).expand(2, 4, 10).to(w.dtype))  # rows sum to 1 − λ
    assert torch.triu(w, diagonal=1).abs().max() == 0  # causal


# -- λ ---------------------------------------------------------------------------------------------------------
def test_lambda_init_per_layer_in_a_built_model():
    from deconstruct.model import build_model

    case = MixerCase("differential", {}, registry=registry_with(PLUGINS))
    resolved = load_spec(case.spec(layers=4), registry=case.get_registry())
    model = build_model(resolved)
    expected = [0.2, 0.8 - 0.6 * math.exp(-0.3), 0.8 - 0.6 * math.exp(-0.6), 0.8 - 0.6 * math.exp(-0.9)]
    got = [b.mixer.lambda_init for b in model.blocks]
    assert got == pytest.approx(expected, abs=1e-12)
    assert lambda_init(0) == pytest.approx(0.2)
    # λ vectors are N(0, 0.1) after the model's init (not the Linear init std)
    lam_params = torch.cat([getattr(b.mixer, n).detach() for b in model.blocks
                            for n in ("lambda_q1", "lambda_k1", "lambda_q2", "lambda_k2")])
    assert 0.05 < lam_params.std().item() < 0.2


def test_lambda_formula():
    mixer = make({}, make_ctx(layer_index=3))
    with torch.no_grad():
        mixer.lambda_q1.fill_(0.1), mixer.lambda_k1.fill_(0.2), mixer.lambda_q2.fill_(-0.3), mixer.lambda_k2.fill_(0.1)
    D = mixer.D
    want = math.exp(0.02 * D) - math.exp(-0.03 * D) + 0.8 - 0.6 * math.exp(-0.9)
    assert mixer.lam().item() == pytest.approx(want, rel=1e-12)


# -- parameters, FLOPs, validation -----------------------------------------------------------------------------
def expected_params(d: int, h: int, n: int, r: int, bias: bool = False) -> int:
    """DiffAttn/GDA parameters, d_h = d/h, budget n heads: S = n·r/(r + 1) signal, G = n/(r + 1) noise,
    value width D_v = n·d_h/S per signal head. W_Q, W_K: d × (S + G)·d_h = d × n·d_h each; W_V: d × S·D_v
    = d × n·d_h; W_O: n·d_h × d; λ: 4·d_h; RMSNorm gain: D_v; biases (if any): 3·n·d_h + d."""
    D = d // h
    S = n * r // (r + 1)
    Dv = n * D // S
    total = 4 * d * n * D + 4 * D + Dv
    if bias:
        total += 3 * n * D + d
    return total


@pytest.mark.parametrize("d,h,options,bias", [
    (16, 4, {}, False), (32, 8, {}, True), (16, 4, {"heads": 6, "signal_ratio": 2}, False),
    (24, 4, {"signal_ratio": 3}, True), (48, 8, {"signal_ratio": 3}, False),
])
def test_parameter_count(d, h, options, bias):
    ctx = make_ctx(d=d, heads=h, bias=bias)
    mixer = make(options, ctx)
    opts = DifferentialOptions(**options)
    assert sum(p.numel() for p in mixer.parameters()) == expected_params(d, h, opts.budget(ctx), opts.signal_ratio, bias)


@pytest.mark.parametrize("d,h,r", [(16, 4, 1), (24, 4, 3), (48, 8, 3), (48, 8, 1), (60, 6, 2)])
def test_gda_keeps_the_head_budget_and_the_parameters_of_standard_attention(d, h, r):
    """Lim et al.'s re-allocation: signal + noise heads = the standard model's heads, so the mixer has
    standard attention's parameters plus λ (4·d_h) and the RMSNorm gain (D_v), whatever the ratio."""
    ctx = make_ctx(d=d, heads=h)
    mixer = make({"signal_ratio": r}, ctx)
    assert mixer.H + mixer.G == h and mixer.H == r * mixer.G
    attn = Attention(ctx, AttentionOptions())
    extra = sum(p.numel() for p in mixer.parameters()) - sum(p.numel() for p in attn.parameters())
    assert extra == 4 * (d // h) + mixer.Dv


def test_flops_per_token():
    mixer = make({})
    weights = mixer.qkv.weight.numel() + mixer.out_proj.weight.numel()
    T, D, H = 10, mixer.D, mixer.H
    span = (T + 1) / 2
    Dv = mixer.Dv
    assert mixer.flops_per_token(T) == int(2 * weights + 2 * span * D * (2 * H) + 4 * span * Dv * H + 6 * Dv * H)
    assert mixer.flops_per_token(2 * T) > mixer.flops_per_token(T)


@pytest.mark.parametrize("model,options,message", [
    ({"heads": 3, "d_model": 33}, {}, "r + 1 must divide 3"),
    ({"heads": 4}, {"signal_ratio": 2}, "r + 1 must divide 4 (valid ratios here: 1;"),
    ({"heads": 4}, {"heads": 6, "signal_ratio": 5}, "the 5 signal heads share the value width"),
    ({"heads": 4}, {"bogus": 1}, "bogus"),
])
def test_rejects_layouts_that_do_not_divide(model, options, message):
    case = MixerCase("differential", options, registry=registry_with(PLUGINS))
    with pytest.raises(SpecError, match=re.escape(message)):
        load_spec(case.spec(**model), registry=case.get_registry())


def test_gradients_reach_lambda_and_both_maps():
    mixer = make({"heads": 6, "signal_ratio": 2}).float()
    x = x_of(mixer).float().requires_grad_(True)
    mixer(x).square().sum().backward()
    for name, p in mixer.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
