"""Tests of the MixiT plugin: deconstruct's conformance suite, plus what is specific to MixiT.

Run after ``pip install -e .`` in this folder: ``pytest tests``.
"""

from __future__ import annotations

import json

import pytest
import torch
import typer
from typer.testing import CliRunner

import deconstruct_mixit
from deconstruct.spec import MixerContext
from deconstruct.testing import MixerConformance, check_light_import
from deconstruct_mixit._mixit import MixiT, mixing_map


class TestMixiT(MixerConformance):
    """Shape, causality, gradients, determinism, spec validation and a few training steps."""

    mixer_name = "mixit"
    plugins = (deconstruct_mixit,)  # registered even before `pip install` (no double registration after)


class TestMixiTStrongNoise(MixerConformance):
    """The same checks far from the identity (c·σ large): still causal, finite, trainable."""

    mixer_name = "mixit"
    options = {"c": 4.0, "sigma": 0.5}
    plugins = (deconstruct_mixit,)


@pytest.mark.parametrize("c", [0.0, 1.0, 10.0])
def test_rows_sum_to_one_and_map_is_lower_triangular(c: float) -> None:
    torch.manual_seed(0)
    A = mixing_map(heads=3, max_seq_len=17, c=c, sigma=0.3)  # (H, T, T)
    assert A.shape == (3, 17, 17)
    torch.testing.assert_close(A.sum(-1), torch.ones(3, 17))
    assert torch.equal(A, A.tril())
    for T in (1, 5, 16):  # a shorter sequence crops the map: rows still sum to 1
        torch.testing.assert_close(A[:, :T, :T].sum(-1), torch.ones(3, T))
    if c == 0:
        assert torch.equal(A, torch.eye(17).expand(3, 17, 17))


def test_map_is_input_independent_and_frozen() -> None:
    ctx = MixerContext(d_model=32, heads=4, layer_index=0, n_layers=1, max_seq_len=16)
    m = MixiT(ctx, deconstruct_mixit.MixiTOptions())
    assert {n for n, _ in m.named_parameters()} == {"v_proj.weight", "out_proj.weight"}  # no W_Q, W_K
    assert "A" in m.state_dict() and not m.A.requires_grad
    # with W_V = W_O = I the output is exactly A·x per head
    with torch.no_grad():
        m.v_proj.weight.copy_(torch.eye(32))
        m.out_proj.weight.copy_(torch.eye(32))
    x = torch.randn(2, 16, 32)
    y = m(x)
    expect = (m.A @ x.view(2, 16, 4, 8).transpose(1, 2)).transpose(1, 2).reshape(2, 16, 32)
    torch.testing.assert_close(y, expect)


def test_default_sigma_follows_the_authors_code() -> None:
    ctx = MixerContext(d_model=64, heads=2, layer_index=0, n_layers=1, max_seq_len=256)
    torch.manual_seed(0)
    m = MixiT(ctx, deconstruct_mixit.MixiTOptions())
    off = (m.A - torch.eye(256)).tril(-1)  # c·(N − drift) below the diagonal
    std = off[off != 0].std().item()
    assert abs(std - (256 * 32) ** -0.5) < 0.1 * (256 * 32) ** -0.5


def test_options_are_checked() -> None:
    with pytest.raises(ValueError):
        deconstruct_mixit.MixiTOptions(c=-1)
    with pytest.raises(ValueError):
        deconstruct_mixit.MixiTOptions(sigmaa=1)


def test_hook_module_does_not_import_torch() -> None:
    check_light_import("deconstruct_mixit")


def test_show_map_command() -> None:
    app = typer.Typer()
    deconstruct_mixit.register_commands(app=app)
    result = CliRunner().invoke(app, ["mixit", "show-map", "--seq-len", "5", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert len(data["map"]) == 5 and all(abs(s - 1) < 1e-5 for s in data["row_sums"])
    result = CliRunner().invoke(app, ["mixit", "show-map", "--seq-len", "3"])
    assert result.exit_code == 0 and result.stdout.count("Σ=1.000") == 3
