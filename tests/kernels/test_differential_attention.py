"""Differential attention in one pass over K/V against its PyTorch reference: output and the gradients of
q1, k1, q2, k2, v and λ, causal and not, odd lengths, fp32 and fp16 (interpreter on the CPU: small shapes)."""

from __future__ import annotations

import os

import pytest
import torch
from _support import assert_modules_agree

from deconstruct.kernels import differential_attention, differential_attention_reference

DEVICE = "cpu" if os.environ.get("TRITON_INTERPRET", "0") == "1" else "cuda"
TOL = {torch.float32: 1e-4, torch.float16: 2e-2}


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("dtype, T, D", [(torch.float32, 37, 16), (torch.float16, 45, 16)])
def test_matches_reference_with_every_gradient(causal, dtype, T, D):
    gen = torch.Generator().manual_seed(0)
    qk = [torch.randn(1, 2, T, D, generator=gen) for _ in range(4)]
    v, dy = (torch.randn(1, 2, T, 2 * D, generator=gen) for _ in range(2))
    lam = torch.tensor(0.37)
    inputs = [t.to(DEVICE, dtype) for t in (*qk, v)]
    dy = dy.to(DEVICE, dtype)

    def run(impl, ts, lam):
        ts = [t.clone().requires_grad_() for t in ts]
        lam = lam.clone().to(DEVICE).requires_grad_()
        y = impl(*ts, lam, causal=causal)
        return (y, *torch.autograd.grad(y, (*ts, lam), dy.to(y.dtype)))

    got = run(differential_attention, inputs, lam)
    want = run(differential_attention_reference, [t.float() for t in inputs], lam)
    for name, g, w in zip(("y", "dq1", "dk1", "dq2", "dk2", "dv", "dlambda"), got, want, strict=True):
        assert g.shape == w.shape, name
        err = (g.float() - w.float()).abs().max().item()
        scale = max(1.0, w.float().abs().max().item()) if name == "dlambda" else 1.0  # a sum over every entry
        assert err <= TOL[dtype] * scale, f"{name}: max abs error {err:.3g}"


@pytest.mark.gpu
def test_differential_mixer_runs_the_fused_kernel_with_backend_triton():
    import dataclasses

    from deconstruct.builtin._differential import DifferentialAttention
    from deconstruct.builtin.differential import DifferentialOptions
    from deconstruct.spec import MixerContext

    ctx = MixerContext(d_model=256, heads=8, layer_index=2, n_layers=4, max_seq_len=512, backend="triton")
    torch.manual_seed(0)
    fused = DifferentialAttention(ctx, DifferentialOptions()).cuda()
    plain = DifferentialAttention(dataclasses.replace(ctx, backend="sdpa"), DifferentialOptions()).cuda()
    plain.load_state_dict(fused.state_dict())
    assert fused.backend_for(torch.device("cuda")) == "triton-fused"
    x = torch.randn(2, 512, 256, device="cuda", requires_grad=True)
    assert_modules_agree(fused, plain, x)
