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
