"""The ``bam`` mixer (soft mixture of attention experts, Zhang et al. 2024): conformance with and without
shared K/V, parameter formulas, a reference built from E standard attentions, one expert = standard
attention, and training inside parallel blocks (the layout BAM uses)."""

from __future__ import annotations

import math
from functools import partial

import _mixer_helpers as helpers
import pytest
import torch

from deconstruct.builtin import bam
from deconstruct.builtin._attention import Attention
from deconstruct.builtin._bam import AttentionExperts
from deconstruct.builtin.attention import AttentionOptions
from deconstruct.builtin.bam import BAMOptions
from deconstruct.testing import MixerConformance, check_light_import, check_mixer


class TestBAMConformance(MixerConformance):
    mixer_name = "bam"
    plugins = (bam,)
    options = {"experts": 3}


make_ctx = partial(helpers.make_ctx, d=16, heads=4, T=10)
x_in = partial(helpers.seeded_input, B=2, T=10, d=16)


def make(options: dict, causal: bool = True, positions: str = "learned") -> AttentionExperts:
    return helpers.build_mixer(AttentionExperts, BAMOptions, options, make_ctx(causal=causal, positions=positions))


def expert(m: AttentionExperts, e: int, ctx) -> Attention:
    """Expert e as a standard Attention module: its rows of W_Q, (shared) W_K, W_V, its columns of W_O."""
    d = m.d
    a = Attention(ctx, AttentionOptions()).to(m.q_proj.weight.dtype)
    ke = 0 if m.share_kv else e
    kv = m.kv_proj.weight.view(2, -1, d)  # (2, E_k·d, d) rows (k|v, expert, head, D)
    with torch.no_grad():
        a.qkv.weight.copy_(torch.cat([m.q_proj.weight[e * d : (e + 1) * d],
                                      kv[0, ke * d : (ke + 1) * d], kv[1, ke * d : (ke + 1) * d]]))
        a.out_proj.weight.copy_(m.out_proj.weight[:, e * d : (e + 1) * d])
    return a


@pytest.mark.parametrize("share_kv", [False, True])
@pytest.mark.parametrize("causal", [True, False])
def test_equals_routed_sum_of_standard_attentions(share_kv, causal):
    m = make({"experts": 3, "share_kv": share_kv}, causal=causal, positions="rope")
    ctx = make_ctx(causal=causal, positions="rope")
    x = x_in()
    g = m.router(x).softmax(-1)  # (B, T, E)
    ref = sum(g[..., e : e + 1] * expert(m, e, ctx)(x) for e in range(3))
    torch.testing.assert_close(m(x), ref)


def test_hook_module_imports_no_torch():
    check_light_import("deconstruct.builtin.bam")


def test_shared_kv_conforms():
    check_mixer("bam", {"experts": 2, "share_kv": True}, plugins=(bam,), checks=("shape", "causal", "gradients"))


@pytest.mark.parametrize(("share_kv", "E"), [(False, 3), (True, 3), (False, 1)])
def test_parameter_count(share_kv, E):
    d = 16
    expected = E * 2 * d * d + (2 * d * d if share_kv else E * 2 * d * d) + d * E
    assert sum(p.numel() for p in make({"experts": E, "share_kv": share_kv}).parameters()) == expected


def test_one_expert_is_standard_attention():
    m = make({"experts": 1})
    x = x_in()
    torch.testing.assert_close(m(x), expert(m, 0, make_ctx())(x))


def test_attention_weights_are_each_experts_maps():
    m = make({"experts": 2})
    x = x_in()
    A = m.attention_weights(x)  # (B, H·E, T, T) ordered (head, expert)
    a1 = expert(m, 1, make_ctx())
    torch.testing.assert_close(A[:, 1::2].double(), a1.attention_weights(x).double(), atol=1e-6, rtol=0)
    assert math.isclose(A.sum(-1).mean().item(), 1.0, rel_tol=1e-6)


def test_trains_in_parallel_blocks():
    check_mixer("bam", {"experts": 2, "share_kv": True}, plugins=(bam,), checks=("trains",))
    from deconstruct.spec import load_spec
    from deconstruct.train import train

    spec = {"name": "bam-parallel", "task": {"name": "lm", "corpus": "stdlib", "seq_len": 16, "max_bytes": 50_000},
            "model": {"d_model": 16, "layers": 2, "heads": 2, "parallel": True, "mixer": {"kind": "bam", "experts": 2}},
            "train": {"steps": 2, "batch_size": 2, "eval_every": 2, "eval_batches": 1}}
    assert math.isfinite(train(load_spec(spec), seed=0, with_diagnostics=True).val_loss)
