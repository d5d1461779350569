"""The ``moh`` mixer (Mixture-of-Head attention, Jin et al. 2024): conformance, parameter count, the
uniform-gates equivalence with standard attention, the gate structure and the load-balance loss."""

from __future__ import annotations

from functools import partial

import _mixer_helpers as helpers
import pytest
import torch
from _support import tiny_spec

from deconstruct.builtin import moh
from deconstruct.builtin._attention import Attention
from deconstruct.builtin._moh import MoHAttention
from deconstruct.builtin.attention import AttentionOptions
from deconstruct.builtin.moh import MoHOptions
from deconstruct.spec import MixerContext
from deconstruct.testing import MixerConformance, check_light_import, registry_with


class TestMoHConformance(MixerConformance):
    mixer_name = "moh"
    plugins = (moh,)
    options = {"shared_heads": 1, "top_k": 2}  # heads 4: 1 shared, 3 routed, keep 2 (W_r gets task gradient)
    allow_zero_grad = ("w_shared.weight",)  # one shared head: softmax over one gate is constant


make_ctx = partial(helpers.make_ctx, d=16, heads=4, T=10)
x_in = partial(helpers.seeded_input, B=3, T=10, d=16)


def make(options: dict, ctx: MixerContext | None = None, seed: int = 0) -> MoHAttention:
    return helpers.build_mixer(MoHAttention, MoHOptions, options, ctx or make_ctx(), seed)


def test_hook_module_imports_no_torch():
    check_light_import("deconstruct.builtin.moh")


def test_default_options_conform():
    """Defaults (h_s = 2, top_k = 1 of 2 routed heads) with the model's aux loss in the gradient check."""
    from deconstruct.testing import check_mixer

    check_mixer("moh", {}, plugins=(moh,), checks=("shape", "causal", "gradients"))


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("shared", [0, 1, 2])
def test_parameter_count(bias, shared):
    d, h = 16, 4
    m = make({"shared_heads": shared}, make_ctx(d=d, heads=h, bias=bias))
    attn = 4 * d * d + (4 * d if bias else 0)  # W_Q, W_K, W_V, W_O (+ their biases)
    router = d * (h - shared) + (d * shared + 2 * d if shared else 0)  # W_r, W_s, W_h
    router_bias = ((h - shared) + (shared + 2 if shared else 0)) if bias else 0
    assert sum(p.numel() for p in m.parameters()) == attn + router + router_bias
    assert sum(p.numel() for p in make({"uniform_gates": True}, make_ctx(d=d, heads=h, bias=bias)).parameters()) == attn


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("positions", ["learned", "rope"])
def test_uniform_gates_is_standard_attention(causal, positions):
    ctx = make_ctx(causal=causal, positions=positions)
    m = make({"uniform_gates": True}, ctx).float()
    torch.manual_seed(5)
    ref = Attention(ctx, AttentionOptions())
    m.load_state_dict(ref.state_dict())  # the same q/k/v/out weights (identical names and shapes)
    x = x_in().float()
    m.train()
    assert torch.equal(m(x), ref(x))
    assert m.aux_loss is None
    assert torch.equal(m.attention_weights(x), ref.attention_weights(x))


def test_gates_structure():
    h, shared, k = 8, 2, 3
    m = make({"shared_heads": shared, "top_k": k}, make_ctx(d=16, heads=h))
    r = m.route(x_in())
    B, T = 3, 10
    assert r.routed.shape == (B, T, h - shared) and r.shared.shape == (B, T, shared)
    assert ((r.routed != 0).sum(-1) == k).all()  # exactly top_k non-zeros per token
    torch.testing.assert_close(r.routed.sum(-1), torch.full((B, T), float(k), dtype=r.routed.dtype))
    assert torch.equal(r.routed != 0, r.selected)
    kept = r.probs.topk(k, dim=-1).indices  # the k most probable routed heads are the kept ones
    assert torch.equal(r.selected, torch.zeros_like(r.selected).scatter(-1, kept, True))
    torch.testing.assert_close(r.shared.sum(-1), torch.full((B, T), float(shared), dtype=r.shared.dtype))
    torch.testing.assert_close(r.alpha.sum(-1), torch.full((B, T), 2.0, dtype=r.alpha.dtype))
    g = r.gates()
    torch.testing.assert_close(g[..., :shared], r.alpha[..., :1] * r.shared)
    torch.testing.assert_close(g[..., shared:], r.alpha[..., 1:] * r.routed)


def test_forward_is_gated_heads_through_w_o():
    """out = W_O·concat_i(g_i·head_i), head_i from the ungated attention weights."""
    m = make({"shared_heads": 1, "top_k": 2})
    x = x_in()
    A = m.attention_weights(x)  # (B, H, T, T)
    _, _, v = m._project(x, None)
    heads = A @ v  # (B, H, T, D)
    g = m.route(x).gates().transpose(1, 2).unsqueeze(-1)  # (B, H, T, 1)
    torch.testing.assert_close(m(x), m._output(heads * g))


def test_aux_loss_train_and_eval():
    m = make({"shared_heads": 2, "top_k": 1})
    x = x_in()
    m.train()
    m(x)
    aux = m.aux_loss
    assert aux is not None and aux.dim() == 0 and torch.isfinite(aux) and aux.item() > 0
    r = m.route(x)
    P, f = r.probs.mean((0, 1)), r.selected.double().mean((0, 1))
    torch.testing.assert_close(aux, 0.01 * (4 - 2) * (P * f).sum())
    aux.backward()
    assert m.w_routed.weight.grad.abs().sum() > 0  # the balance loss trains the router
    m.eval()
    m(x)
    assert m.aux_loss is None
    m0 = make({"balance_coef": 0.0}).train()  # coefficient 0: no loss at all
    m0(x)
    assert m0.aux_loss is None


def test_causal_output_and_model_aux_loss():
    """In a model, Transformer.aux_loss() sums the layers' balance losses (training forward only)."""
    from deconstruct.model import build_model
    from deconstruct.spec import load_spec

    spec = tiny_spec({"kind": "moh"}, task={"seq_len": 16}, d_model=16, heads=4)
    registry = registry_with((moh,))
    model = build_model(load_spec(spec, registry=registry))
    idx = torch.randint(0, 256, (2, 16))
    model.train()
    model(idx)
    aux = model.aux_loss()
    assert aux is not None and aux.item() > 0
    model.eval()
    model(idx)
    assert model.aux_loss() is None


def test_defaults_and_checks():
    ctx = make_ctx(heads=8)
    opts = MoHOptions()
    assert (opts.shared_heads, opts.k(8), opts.balance_coef) == (2, 3, 0.01)  # k = (8 − 2) // 2
    with pytest.raises(ValueError, match="shared_heads"):
        MoHOptions(shared_heads=8).check(ctx)
    with pytest.raises(ValueError, match="top_k"):
        MoHOptions(shared_heads=2, top_k=7).check(ctx)
    with pytest.raises(ValueError, match="rope"):
        MoHOptions().check(make_ctx(d=24, heads=8, positions="rope"))  # head width 3
    from deconstruct._errors import SpecError
    from deconstruct.spec import load_spec

    spec = tiny_spec({"kind": "moh"}, task={"seq_len": 16}, d_model=16, layers=1)
    with pytest.raises(SpecError, match="shared_heads"):  # default h_s = 2 needs at least 3 heads
        load_spec(spec, registry=registry_with((moh,)))


def test_flops_per_token():
    d, h, T = 16, 4, 10
    m = make({}, make_ctx(d=d, heads=h))
    params = sum(p.numel() for p in m.parameters())
    D = d // h
    assert m.flops_per_token(T) == int(2 * params + 2 * (T + 1) / 2 * h * 2 * D + h * D)
