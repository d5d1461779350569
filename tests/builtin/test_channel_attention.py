"""The ``channel_attention`` mixer (DaViT channel group attention, Ding et al. 2022): non-causal conformance
on cloze, a written-out per-group reference, parameter count, token-permutation equivariance, rejection in a
causal task, and FLOPs."""

from __future__ import annotations

import math
from functools import partial

import _mixer_helpers as helpers
import pytest
import torch

from deconstruct._errors import SpecError
from deconstruct.builtin import channel_attention
from deconstruct.builtin._channel_attention import ChannelAttention
from deconstruct.builtin.channel_attention import ChannelAttentionOptions
from deconstruct.spec import MixerContext, load_spec
from deconstruct.testing import MixerCase, MixerConformance, check_light_import, registry_with

CLOZE = {"name": "cloze", "corpus": "stdlib", "max_bytes": 50_000}


class TestChannelAttentionConformance(MixerConformance):
    """shape, gradients, determinism, spec (uniform + hybrid), and 3 training steps on cloze (finite loss);
    the causality check is skipped: the task is not causal."""

    mixer_name = "channel_attention"
    plugins = (channel_attention,)
    task = CLOZE
    ignores_positions = "permutation-equivariant over tokens by design: positions come from learned embeddings"


make_ctx = partial(helpers.make_ctx, d=16, heads=4, T=12, causal=False)
x_in = partial(helpers.seeded_input, B=2, T=12, d=16)


def make(options: dict | None = None, ctx: MixerContext | None = None, seed: int = 0) -> ChannelAttention:
    # no options.check here: ChannelAttentionOptions has none (the causal-task rejection is tested via load_spec)
    return helpers.build_mixer(ChannelAttention, ChannelAttentionOptions, options, ctx or make_ctx(), seed,
                               check=False)


def reference(m: ChannelAttention, x: torch.Tensor, scale: float) -> torch.Tensor:
    """Written out per group g: its C_g channels of Q, K, V as (T, C_g) matrices, A_g = softmax(Q_gᵀK_g·s)
    (C_g × C_g), out_g = (A_g V_gᵀ)ᵀ; groups concatenated, then W_O."""
    B, T, d = x.shape
    D = m.D
    W_q, W_k, W_v = m.qkv.weight.split(d, dim=0)  # (d, d) each, rows = output channels
    outs = []
    for b in range(B):
        groups = []
        for g in range(m.H):
            rows = slice(g * D, (g + 1) * D)
            Q, K, V = x[b] @ W_q[rows].T, x[b] @ W_k[rows].T, x[b] @ W_v[rows].T  # (T, C_g)
            A = torch.softmax(Q.T @ K * scale, dim=-1)  # (C_g, C_g)
            groups.append((A @ V.T).T)  # (T, C_g)
        outs.append(torch.cat(groups, dim=-1) @ m.out_proj.weight.T)  # (T, d)
    return torch.stack(outs)


def test_hook_module_imports_no_torch():
    check_light_import("deconstruct.builtin.channel_attention")


@pytest.mark.parametrize(("scale", "heads"), [("group", 4), ("group", 1), ("tokens", 4), ("group", 16)])
def test_equals_written_out_reference(scale, heads):
    T, d = 12, 16
    m = make({"scale": scale}, make_ctx(d=d, heads=heads, T=T))
    x = x_in(T=T, d=d)
    s = 1 / math.sqrt(d // heads) if scale == "group" else 1 / math.sqrt(T)
    torch.testing.assert_close(m(x), reference(m, x, s))


@pytest.mark.parametrize("bias", [False, True])
def test_parameter_count(bias):
    d = 16
    m = make(ctx=make_ctx(d=d, bias=bias))
    assert sum(p.numel() for p in m.parameters()) == 4 * d * d + (4 * d if bias else 0)  # W_Q, W_K, W_V, W_O


def test_token_permutation_equivariance():
    """Permuting the input tokens permutes the outputs the same way (the mixer alone has no positions)."""
    m = make()
    x = x_in()
    perm = torch.randperm(x.shape[1], generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(m(x[:, perm]), m(x)[:, perm])


def test_every_token_sees_every_token():
    """Non-causal and global: changing the last token changes the first output, and vice versa."""
    m = make()
    x = x_in()
    y = m(x)
    for src, dst in ((-1, 0), (0, -1)):
        x2 = x.clone()
        x2[:, src] += 1.0
        assert not torch.allclose(m(x2)[:, dst], y[:, dst])


@pytest.mark.parametrize("task", ["lm", "mqar"])
def test_rejected_in_causal_task(task):
    case = MixerCase("channel_attention", registry=registry_with((channel_attention,)))
    spec = case.spec()
    if task == "mqar":
        spec["task"] = {"name": "mqar"}
    with pytest.raises(SpecError) as err:
        load_spec(spec, registry=case.get_registry())
    assert f"mixer 'channel_attention' supports noncausal_self but task '{task}' needs causal_self" in str(err.value)


def test_accepted_in_cloze_and_rejects_unknown_option():
    case = MixerCase("channel_attention", {"scale": "tokens"}, task=CLOZE,
                     registry=registry_with((channel_attention,)))
    resolved = case.resolved()
    assert all(p.mixer == "channel_attention" for p in resolved.layers)
    assert resolved.layers[0].options.scale == "tokens"
    bad = case.spec()
    bad["model"]["mixer"]["scale"] = "rows"
    with pytest.raises(SpecError):
        load_spec(bad, registry=case.get_registry())


def test_flops_per_token():
    d, h = 16, 4
    m = make(ctx=make_ctx(d=d, heads=h))
    D = d // h
    assert m.flops_per_token(12) == 2 * 4 * d * d + 4 * h * D * D
    assert m.flops_per_token(1024) == m.flops_per_token(12)  # linear in T overall: constant per token


def test_no_token_attention_weights():
    assert not hasattr(make(), "attention_weights")  # its maps are over channels; the diagnostics skip it
