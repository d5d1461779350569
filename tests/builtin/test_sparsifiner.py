"""The ``sparsifiner`` mixer (Wei et al. 2023): conformance (causality, gradients incl. the distillation
loss), parameter count, a written-out predictor and selection, k = T = full attention, the distillation loss
that teaches the predictor, and the frozen predictor of distill 0."""

from __future__ import annotations

import math
from functools import partial

import _mixer_helpers as helpers
import pytest
import torch

from deconstruct.builtin import sparsifiner
from deconstruct.builtin._attention import Attention
from deconstruct.builtin._sparsifiner import SparsifinerAttention
from deconstruct.builtin.attention import AttentionOptions
from deconstruct.builtin.sparsifiner import SparsifinerOptions
from deconstruct.testing import MixerConformance, check_light_import, check_mixer


class TestSparsifinerConformance(MixerConformance):
    mixer_name = "sparsifiner"
    plugins = (sparsifiner,)
    options = {"top_k": 6, "block": 5, "basis": 2}


make_ctx = partial(helpers.make_ctx, d=16, heads=4, T=14)
x_in = partial(helpers.seeded_input, B=2, T=14, d=16)


def make(options: dict, causal: bool = True, positions: str = "learned") -> SparsifinerAttention:
    return helpers.build_mixer(SparsifinerAttention, SparsifinerOptions, options,
                               make_ctx(causal=causal, positions=positions))


def reference(m: SparsifinerAttention, x: torch.Tensor, causal: bool) -> torch.Tensor:
    """Per (batch, head, query), written out: the predictor's score of every key (basis keys of its block,
    the kept up-projection entries), the top-k of the eligible keys, one softmax with the own block."""
    B, T, d = x.shape
    H, D, S, n = m.H, m.D, m.S, m.n
    q, k, v = m._project(x, None)
    up = m.up.detach().clone()
    keep = max(1, round(m.up_density * up.numel()))
    up[up.abs() < up.abs().flatten().sort(descending=True).values[keep - 1]] = 0
    out = torch.zeros(B, H, T, D, dtype=x.dtype)
    for b in range(B):
        for h in range(H):
            ql, kl = m.pred_q(q[b, h]), m.pred_k(k[b, h])  # (T, r)
            for i in range(T):
                own = [j for j in range(T) if j // S == i // S and (j <= i or not causal)]
                eligible = [j for j in range(T) if j // S != i // S and (j <= i or not causal)]
                score = {}
                for j in eligible:
                    p, t = j // S, j % S
                    members = [p * S + s for s in range(S)]
                    basis = [sum(m.down[s, c] * kl[jj] for s, jj in enumerate(members) if jj < T) for c in range(n)]
                    score[j] = sum((ql[i] @ basis[c]) * up[c, t] for c in range(n))
                picked = sorted(eligible, key=lambda j: -float(score[j]))[: m.top_k]
                keys = own + picked
                s = torch.stack([q[b, h, i] @ k[b, h, j] for j in keys]) / math.sqrt(D)
                out[b, h, i] = (s.softmax(0)[:, None] * v[b, h, keys]).sum(0)
    return m._output(out)


def test_hook_module_imports_no_torch():
    check_light_import("deconstruct.builtin.sparsifiner")


def test_noncausal_conforms():
    check_mixer("sparsifiner", {"top_k": 5, "block": 4}, plugins=(sparsifiner,), checks=("shape", "gradients", "spec"),
                task={"name": "cloze", "corpus": "stdlib", "max_bytes": 50_000})


def test_parameter_count():
    d, D = 16, 4
    m = make({"block": 5, "basis": 2, "rank": 3})
    assert sum(p.numel() for p in m.parameters()) == 4 * d * d + 2 * 3 * D + 2 * 5 * 2


@pytest.mark.parametrize("causal", [True, False])
def test_equals_written_out_reference(causal):
    m = make({"top_k": 3, "block": 4, "basis": 2, "up_density": 1.0}, causal=causal)  # no zero column: no ties
    x = x_in()
    with torch.no_grad():
        torch.testing.assert_close(m(x), reference(m, x, causal))


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("positions", ["learned", "rope"])
def test_k_equals_T_is_full_attention(causal, positions):
    m = make({"top_k": 14, "block": 4}, causal=causal, positions=positions).float()
    ref = Attention(make_ctx(causal=causal, positions=positions), AttentionOptions())
    ref.load_state_dict(m.state_dict(), strict=False)
    x = x_in().float()
    torch.testing.assert_close(m(x), ref(x), atol=1e-6, rtol=0)


def test_only_picked_keys_matter():
    """A key the predictor did not pick, outside the own block, has no effect on the query's output."""
    m = make({"top_k": 2, "block": 4})
    x = x_in()
    A = m.attention_weights(x)  # (B, H, T, T)
    i = 13
    assert ((A[:, :, i] > 0).sum(-1) == 2 + 2).all()  # own block {12, 13} + 2 picked
    _, _, v = m._project(x, None)
    torch.testing.assert_close(m._output(A @ v), m(x))


def test_distillation_teaches_the_predictor():
    m = make({"top_k": 3, "block": 4, "basis": 2}).float()
    m.train()
    x = x_in().float()
    opt = torch.optim.Adam([m.pred_q.weight, m.pred_k.weight, m.down, m.up], lr=0.05)
    losses = []
    for _ in range(30):
        m(x)
        assert m.aux_loss is not None and m.aux_loss.item() >= 0
        losses.append(m.aux_loss.item())
        opt.zero_grad()
        m.aux_loss.backward()
        opt.step()
    assert losses[-1] < 0.7 * losses[0]
    m.eval()
    m(x)
    assert m.aux_loss is None  # no dense teacher at inference


def test_distill_zero_freezes_the_predictor():
    m = make({"distill": 0})
    m.train()
    m(x_in())
    assert m.aux_loss is None
    assert not any(p.requires_grad for p in (m.pred_q.weight, m.pred_k.weight, m.down, m.up))


def test_checks():
    with pytest.raises(ValueError, match="basis"):
        SparsifinerOptions(block=2, basis=3).check(make_ctx())


def test_up_projection_is_sparse():
    m = make({"block": 5, "basis": 2, "up_density": 0.3})
    up = m.sparse_up().detach()
    assert int((up != 0).sum()) == 3  # 30 % of the 2×5 entries: the largest in magnitude
    assert set(up[up != 0].abs().tolist()) == set(m.up.detach().abs().flatten().topk(3).values.tolist())
