"""The model: causality, parameter counts against the formula, determinism, backends."""

from __future__ import annotations

import pytest
import torch

from deconstruct.model import attention_eager, build_model
from deconstruct.spec import load_spec


def standard_params(V: int, T: int, d: int, L: int, r: float = 4.0, tied: bool = True, learned: bool = True) -> int:
    """Pre-norm GPT without biases: embeddings, per block 2 norms + QKV + O + MLP, final norm, head."""
    block = d + 3 * d * d + d * d + d + 2 * d * int(r * d)
    return V * d + (T * d if learned else 0) + L * block + d + (0 if tied else V * d)


@pytest.mark.parametrize("overrides", [[], ["model.positions=rope"], ["model.tie_embeddings=false"], ["model.layers=3", "model.d_model=48"]])
def test_parameter_count_matches_formula(tiny, overrides):
    r = load_spec(tiny, overrides)
    m = r.spec.model
    expected = standard_params(256, 32, m.d_model, m.layers, tied=m.tie_embeddings, learned=m.positions == "learned")
    assert build_model(r).num_params() == expected


def test_gqa_parameter_count(tiny):
    r = load_spec(tiny, ["model.heads=4", "model.mixer.kv_heads=1"])
    d, Dh = 32, 8
    full = build_model(load_spec(tiny, ["model.heads=4"])).num_params()
    # each layer's fused projection loses 2·d·(H − H_kv)·D_h
    assert build_model(r).num_params() == full - 2 * 2 * d * (4 - 1) * Dh


def test_channel_mixer_none_and_glu(tiny):
    base = build_model(load_spec(tiny)).num_params()
    d, L = 32, 2
    none = build_model(load_spec(tiny, ["model.channel_mixer=none"])).num_params()
    assert base - none == L * (d + 2 * d * 4 * d)  # the MLP and its pre-norm are gone
    glu = build_model(load_spec(tiny, ["model.channel_mixer=glu"])).num_params()
    assert glu != base and abs(glu - base) <= L * 3 * d  # glu is sized to match the MLP: off by < 1 hidden unit


@pytest.mark.parametrize("overrides", [[], ["model.positions=rope"], ["model.mixer=mlp"], ["model.layout=hybrid", "model.mixer=mlp"],
                                       ["model.mixer.kv_heads=1"], ["model.norm=rmsnorm", "model.channel_mixer=glu"]])
def test_causality(tiny, overrides):
    """Changing token t+1 never changes outputs at positions ≤ t."""
    torch.manual_seed(0)
    model = build_model(load_spec(tiny, overrides)).eval()
    x = torch.randint(0, 256, (2, 32))
    with torch.no_grad():
        base = model(x)
        for t in (0, 7, 30):
            y = x.clone()
            y[:, t + 1] = (y[:, t + 1] + 1) % 256
            out = model(y)
            assert torch.equal(out[:, : t + 1], base[:, : t + 1])
            assert not torch.allclose(out[:, t + 1], base[:, t + 1])


def test_same_seed_same_weights_and_outputs(tiny):
    r = load_spec(tiny)
    torch.manual_seed(3)
    a = build_model(r)
    torch.manual_seed(3)
    b = build_model(r)
    x = torch.randint(0, 256, (1, 32))
    assert torch.equal(a(x), b(x))


def test_backends_agree(tiny):
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 4, 9, 8) for _ in range(3))
    ref = attention_eager(q, k, v, causal=True)
    sdpa = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    assert torch.allclose(ref, sdpa, atol=1e-6)
    r_eager = load_spec(tiny, ["model.backend=eager"])
    r_sdpa = load_spec(tiny, ["model.backend=sdpa"])
    torch.manual_seed(1)
    me = build_model(r_eager)
    torch.manual_seed(1)
    ms = build_model(r_sdpa)
    x = torch.randint(0, 256, (2, 32))
    assert torch.allclose(me(x), ms(x), atol=1e-5)


@pytest.mark.parametrize("overrides", [["model.mixer=mlp"], ["model.channel_mixer=glu"], ["model.layers=3", "model.heads=4"]])
def test_flops_per_token_agree_with_torch_flop_counter(tiny, overrides):
    """The analytic count against torch's own count of the matmuls in one forward pass. The eager backend
    computes the full T×T scores and weighted sum; the analytic count leaves out the masked upper triangle,
    T(T−1)/2 query-key pairs per layer at 4·d FLOPs each (q·k and a·v over every head)."""
    from torch.utils.flop_counter import FlopCounterMode

    r = load_spec(tiny, ["model.backend=eager", *overrides])
    model = build_model(r).eval()
    T, d = 32, r.spec.model.d_model
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, T, dtype=torch.long))
    attention_layers = sum(p.mixer == "attention" for p in r.layers)
    masked = attention_layers * 4 * d * T * (T - 1) // 2
    assert model.flops_per_token(T) * T == counter.get_total_flops() - masked


def test_meta_device_build_for_counting(tiny):
    r = load_spec(tiny)
    with torch.device("meta"):
        model = build_model(r)
    assert model.num_params() == build_model(r).num_params()


def test_parallel_blocks(tiny):
    """model.parallel: one norm per block (d fewer parameters per layer), the block computes
    x + mixer(norm1(x)) + channel(norm1(x)), the model stays causal, and the config hash of the default
    (sequential) spec is the one it had before the switch existed (the key is left out of it)."""
    seq, par = load_spec(tiny), load_spec(tiny, ["model.parallel=true"])
    assert "parallel" not in seq.config()["model"] and par.config()["model"]["parallel"] is True
    assert seq.config_hash() != par.config_hash()
    torch.manual_seed(0)
    model = build_model(par)
    d, L = 32, 2
    assert build_model(seq).num_params() - model.num_params() == L * d
    block = model.block_list()[0]
    x = torch.randn(2, 10, d)
    with torch.no_grad():
        h = block.norm1(x)
        torch.testing.assert_close(block(x), x + block.mixer(h) + block.channel(h))
    idx = torch.randint(0, 256, (1, 12))
    idx2 = idx.clone()
    idx2[0, 8:] = (idx2[0, 8:] + 1) % 256
    with torch.no_grad():
        torch.testing.assert_close(model(idx)[:, :8], model(idx2)[:, :8])
