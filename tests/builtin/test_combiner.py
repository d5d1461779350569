"""The ``combiner`` mixer (Ren et al. 2021): conformance (causality, gradients), parameter count, a
written-out reference of the factorised distribution, one region = full attention, and a mixing matrix that
covers every earlier token."""

from __future__ import annotations

import math
from functools import partial

import _mixer_helpers as helpers
import pytest
import torch

from deconstruct.builtin import combiner
from deconstruct.builtin._attention import Attention
from deconstruct.builtin._combiner import CombinerAttention
from deconstruct.builtin.attention import AttentionOptions
from deconstruct.builtin.combiner import CombinerOptions
from deconstruct.testing import MixerConformance, check_light_import, check_mixer


class TestCombinerConformance(MixerConformance):
    mixer_name = "combiner"
    plugins = (combiner,)
    options = {"region_size": 5}  # 32 tokens: 7 blocks, the last of 2


make_ctx = partial(helpers.make_ctx, d=16, heads=4, T=14)
x_in = partial(helpers.seeded_input, B=2, T=14, d=16)


def make(options: dict, T: int = 14, seed: int = 0, positions: str = "learned") -> CombinerAttention:
    m = helpers.build_mixer(CombinerAttention, CombinerOptions, options, make_ctx(T=T, positions=positions), seed)
    with torch.no_grad():  # a non-trivial within-region distribution
        m.summary_query.copy_(torch.randn(m.summary_query.shape, generator=torch.Generator().manual_seed(3)))
    return m


def reference(m: CombinerAttention, x: torch.Tensor, S: int, axial: bool) -> torch.Tensor:
    """Per (batch, head, query), written out: the direct keys and the regions (as index lists), one softmax
    over [q·k_j for direct j] + [q·maxpool(k_Ω) for each region], region values = softmax(w·k)-weighted."""
    B, T, d = x.shape
    H, D = m.H, m.D
    q, k, v = m._project(x, None)
    out = torch.zeros(B, H, T, D, dtype=x.dtype)
    for b in range(B):
        for h in range(H):
            w = m.summary_query[h]
            for i in range(T):
                r = i // S
                direct = list(range(r * S, i + 1))
                if axial:
                    regions = [[j for j in range(r * S) if j % S == c] for c in range(S)] if r else []
                else:
                    regions = [list(range(p * S, (p + 1) * S)) for p in range(r)]
                logits = [q[b, h, i] @ k[b, h, j] / math.sqrt(D) for j in direct]
                vals = [v[b, h, j] for j in direct]
                for reg in regions:
                    logits.append(q[b, h, i] @ k[b, h, reg].amax(0) / math.sqrt(D))
                    inner = torch.stack([w @ k[b, h, j] / math.sqrt(D) for j in reg]).softmax(0)
                    vals.append((inner[:, None] * v[b, h, reg]).sum(0))
                p = torch.stack(logits).softmax(0)
                out[b, h, i] = (p[:, None] * torch.stack(vals)).sum(0)
    return m._output(out)


def test_hook_module_imports_no_torch():
    check_light_import("deconstruct.builtin.combiner")


def test_axial_conforms():
    check_mixer("combiner", {"factorization": "axial", "region_size": 4}, plugins=(combiner,),
                checks=("shape", "causal", "gradients"))


def test_default_block_conforms():
    check_mixer("combiner", {}, plugins=(combiner,), checks=("causal",))


def test_parameter_count():
    d, h = 16, 4
    m = make({})
    assert sum(p.numel() for p in m.parameters()) == 4 * d * d + h * (d // h)  # W_Q, W_K, W_V, W_O + w_h


@pytest.mark.parametrize("axial", [False, True])
@pytest.mark.parametrize("S", [3, 4])
def test_equals_written_out_reference(axial, S):
    m = make({"factorization": "axial" if axial else "fixed", "region_size": S})
    x = x_in()
    torch.testing.assert_close(m(x), reference(m, x, S, axial))


@pytest.mark.parametrize("factorization", ["fixed", "axial"])
@pytest.mark.parametrize("positions", ["learned", "rope"])
def test_one_region_is_full_attention(factorization, positions):
    T = 14
    m = make({"factorization": factorization, "region_size": T}, positions=positions).float()
    ref = Attention(make_ctx(T=T, positions=positions), AttentionOptions())
    ref.load_state_dict(m.state_dict(), strict=False)  # the same q/k/v/out weights
    x = x_in().float()
    torch.testing.assert_close(m(x), ref(x), atol=1e-6, rtol=0)


@pytest.mark.parametrize("factorization", ["fixed", "axial"])
def test_full_coverage(factorization):
    """Every earlier token gets a positive weight (no token is dropped, unlike window / sparse attention),
    rows sum to one, and forward = W_O·(A·V)."""
    m = make({"factorization": factorization, "region_size": 4})
    x = x_in()
    A = m.attention_weights(x)
    T = x.shape[1]
    tril = torch.ones(T, T, dtype=torch.bool).tril()
    assert (A[..., tril] > 0).all() and (A[..., ~tril] == 0).all()
    torch.testing.assert_close(A.sum(-1), torch.ones_like(A.sum(-1)))
    _, _, v = m._project(x, None)
    torch.testing.assert_close(m._output(A @ v), m(x))


def test_cost_is_subquadratic():
    m = make({})
    f = [m.flops_per_token(T) - 2 * sum(p.numel() for p in m.parameters()) for T in (256, 1024, 4096)]
    assert 1.6 < f[1] / f[0] < 2.4 and 1.6 < f[2] / f[1] < 2.4  # per-token mixing ∝ √T: ×2 per ×4 in T


def test_noncausal_rejected():
    with pytest.raises(ValueError, match="causal"):
        CombinerOptions().check(make_ctx(causal=False))
