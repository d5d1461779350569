"""Attention indicators on maps whose values are known in closed form."""

from __future__ import annotations

import math

import pytest
import torch

from deconstruct.train._diagnostics import attention_indicators


def uniform_causal(T: int) -> torch.Tensor:
    return torch.ones(T, T).tril() / torch.arange(1, T + 1)[:, None]


def test_uniform_causal_map():
    T = 8
    A = uniform_causal(T)[None, None]  # (1, 1, T, T)
    ind = attention_indicators(A)
    assert ind["entropy"].item() == pytest.approx(sum(math.log(i) for i in range(1, T + 1)) / T, rel=1e-5)
    assert ind["sink"].item() == pytest.approx(sum(1 / i for i in range(1, T + 1)) / T, rel=1e-5)
    assert ind["local_0"].item() == pytest.approx(ind["sink"].item(), rel=1e-5)  # both are mean 1/(i+1)
    assert ind["local_1"].item() == pytest.approx(sum(1 / i for i in range(2, T + 1)) / (T - 1), rel=1e-5)
    assert ind["concentration"].item() == pytest.approx(math.sqrt(sum(1 / i for i in range(1, T + 1))), rel=1e-5)


def test_identity_map_and_head_diversity():
    T = 6
    eye, uni = torch.eye(T), uniform_causal(T)
    ind = attention_indicators(torch.stack([eye, uni])[None])  # two heads: identity and uniform
    assert ind["entropy"][0].item() == pytest.approx(0.0, abs=1e-6)
    assert ind["local_0"][0].item() == pytest.approx(1.0)
    assert ind["sink"][0].item() == pytest.approx(1 / T)
    # two heads: the std of two numbers is |a − b|/√2. Row i (0-based) differs by i/(i+1) on the diagonal and
    # by 1/(i+1) at each of its i earlier positions, so its entries differ by 2i/(i+1) in all; mean over T² entries
    expected = sum(2 * i / (i + 1) for i in range(T)) / (math.sqrt(2) * T * T)
    assert ind["head_diversity"].item() == pytest.approx(expected, rel=1e-6)
    same = attention_indicators(torch.stack([uni, uni])[None])
    assert same["head_diversity"].item() == pytest.approx(0.0, abs=1e-7)


def test_secondary_sink_found_where_the_mass_goes():
    """A map that sends 40 % of every later query's mass to position 4 (1-based): the secondary sink is
    there, with score 0.4 + the uniform remainder it also gets."""
    T = 8
    A = uniform_causal(T) * 0.6
    A[4:, 3] += 0.4  # queries 5 … 8 put 0.4 extra on key 4
    A[:4] = uniform_causal(T)[:4]
    ind = attention_indicators(A[None, None])
    assert ind["sink_secondary_pos"].item() == 4
    expected = sum(A[i, 3].item() for i in range(4, T)) / (T - 4)  # queries after key 4 (0-based 3)
    assert ind["sink_secondary"].item() == pytest.approx(expected)


def test_secondary_sink_mlp_norm_is_recorded(tmp_path):
    """collect_diagnostics adds the MLP-norm ratio at the secondary sink for layers ≥ 2."""
    from deconstruct.model import build_model
    from deconstruct.spec import load_spec
    from deconstruct.train._diagnostics import collect_diagnostics, mlp_norm_at

    resolved = load_spec({"name": "t", "task": {"name": "lm", "corpus": "stdlib", "seq_len": 12, "max_bytes": 50_000},
                          "model": {"d_model": 16, "layers": 2, "heads": 2}})
    torch.manual_seed(0)
    model = build_model(resolved, vocab_size=256)
    rows = collect_diagnostics(model, torch.randint(0, 256, (2, 12)))
    names = {(layer, name) for layer, _, name, _ in rows}
    assert (2, "sink_secondary_mlp_norm") in names and (1, "sink_secondary_mlp_norm") not in names
    assert (1, "sink_secondary") in names
    norms = torch.tensor([[5.0, 1.0, 2.0, 9.0, 3.0]])
    assert mlp_norm_at(norms, 3) == pytest.approx(9.0 / 2.0)  # median of 1, 2, 9, 3 is 2 (torch: lower middle)
