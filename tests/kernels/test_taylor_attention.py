"""The chunked Taylor linear attention kernel (``form: approximate``) against the mixer's PyTorch chunked form
and its step-by-step recurrent form: output and the gradients of q, k, v, causal, odd lengths (not multiples of
the kernel's 32-token chunk), query/key widths 16 and 32, value widths 16 and 32, both normalisations, fp32 and
fp16. On the CPU the kernel runs under TRITON_INTERPRET=1 (set in conftest), so the shapes stay small."""

from __future__ import annotations

import os

import pytest
import torch

from deconstruct.builtin._forms import taylor_attention_recurrent
from deconstruct.kernels import taylor_attention, taylor_attention_reference

DEVICE = "cpu" if os.environ.get("TRITON_INTERPRET", "0") == "1" else "cuda"
# max abs error of the output and of each gradient (fp16: inputs rounded to 11 bits, then fp32/tf32 inside)
TOL = {torch.float32: 1e-4, torch.float16: 2e-2}


def _inputs(T: int, D: int, DV: int, normalization: str, dtype: torch.dtype, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    q, k = (torch.randn(1, 2, T, D, generator=gen) for _ in range(2))
    v, do = (torch.randn(1, 2, T, DV, generator=gen) for _ in range(2))
    if normalization == "separate":
        # every score positive: the first-order normaliser Σ_j s_ij stays away from 0 (with signed scores it
        # can vanish, and then any two summation orders differ by far more than rounding)
        q, k = q.abs(), k.abs()
    return [t.to(DEVICE, dtype) for t in (q, k, v, do)]


def _run(impl, q, k, v, do, normalization):
    q, k, v = (t.clone().requires_grad_() for t in (q, k, v))
    out = impl(q, k, v, normalization)
    return (out, *torch.autograd.grad(out, (q, k, v), do.to(out.dtype)))


@pytest.mark.parametrize("dtype, T, D, DV, normalization", [
    (torch.float32, 37, 16, 16, "single"),
    (torch.float32, 50, 32, 16, "single"),
    (torch.float32, 37, 16, 32, "separate"),
    (torch.float16, 50, 16, 32, "single"),
    (torch.float16, 37, 32, 32, "separate"),
])
def test_matches_reference_with_every_gradient(dtype, T, D, DV, normalization):
    q, k, v, do = _inputs(T, D, DV, normalization, dtype)
    got = _run(taylor_attention, q, k, v, do, normalization)
    want = _run(taylor_attention_reference, q.float(), k.float(), v.float(), do.float(), normalization)
    for name, g, w in zip(("out", "dq", "dk", "dv"), got, want, strict=True):
        assert g.dtype == dtype and g.shape == w.shape, name
        err = (g.float() - w).abs().max().item()
        assert err <= TOL[dtype], f"{name}: max abs error {err:.3g}"


@pytest.mark.parametrize("normalization", ["single", "separate"])
def test_forward_equals_the_recurrent_form(normalization):
    """Independent of the chunked reference: the RNN form S_t = S_{t−1} + φ(k_t)v_tᵀ over explicit features."""
    q, k, v, _ = _inputs(45, 16, 16, normalization, torch.float32, seed=3)
    got = taylor_attention(q, k, v, normalization)
    want = taylor_attention_recurrent(q, k, v, normalization)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_causal_output_ignores_later_tokens():
    q, k, v, _ = _inputs(50, 16, 16, "single", torch.float32, seed=1)
    y = taylor_attention(q, k, v)
    q2, k2, v2 = q.clone(), k.clone(), v.clone()
    q2[:, :, 40:] += 1.0  # token 40 onwards, inside the second 32-token chunk
    k2[:, :, 40:] -= 1.0
    v2[:, :, 40:] *= 2.0
    y2 = taylor_attention(q2, k2, v2)
    assert torch.equal(y[:, :, :40], y2[:, :, :40]) and not torch.allclose(y[:, :, 40:], y2[:, :, 40:])


def test_rejects_unsupported_input():
    q = torch.randn(1, 1, 8, 16, device=DEVICE)
    with pytest.raises(ValueError, match="single"):
        taylor_attention(q, q, q, "both")
    with pytest.raises(ValueError, match="head widths"):
        taylor_attention(q[..., :8], q[..., :8], q)
    with pytest.raises(ValueError, match=r"q, k must be \(B, H, T, d\)"):
        taylor_attention(q, q[:, :, :4], q)


def test_mixer_uses_the_kernel_only_when_asked_and_possible():
    """``backend: triton`` → ``triton-taylor`` where Triton runs (causal, fitting widths); ``auto`` keeps the
    PyTorch chunked form; an unavailable ``triton`` is an error, as for every other form."""
    import dataclasses

    from deconstruct._errors import RunError
    from deconstruct.builtin._attention import Attention
    from deconstruct.builtin.attention import AttentionOptions
    from deconstruct.model._attend import triton_runs_on
    from deconstruct.spec import MixerContext

    ctx = MixerContext(d_model=64, heads=4, layer_index=0, n_layers=1, max_seq_len=64, backend="triton")
    opts = AttentionOptions(form="approximate")
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert Attention(dataclasses.replace(ctx, backend="auto"), opts).backend_for(cuda) == "chunked-taylor"
    assert Attention(dataclasses.replace(ctx, backend="auto"), opts).backend_for(cpu) == "chunked-taylor"
    with pytest.raises(RunError, match="triton"):
        Attention(ctx, opts).backend_for(cpu)
    if triton_runs_on(cuda):  # triton imports (and CUDA or the interpreter is there)
        assert Attention(ctx, opts).backend_for(cuda) == "triton-taylor"
        assert Attention(ctx, AttentionOptions(form="approximate", qk_dim=8)).backend_for(cuda) == "chunked-taylor"
        assert Attention(dataclasses.replace(ctx, causal=False), opts).backend_for(cuda) == "chunked-taylor"


@pytest.mark.gpu
def test_attention_mixer_runs_the_kernel_with_backend_triton():
    """``form: approximate`` with ``backend: triton`` goes through the kernel, equal to the PyTorch chunked form."""
    import dataclasses

    from deconstruct.builtin._attention import Attention
    from deconstruct.builtin.attention import AttentionOptions
    from deconstruct.spec import MixerContext

    ctx = MixerContext(d_model=128, heads=8, layer_index=0, n_layers=1, max_seq_len=300, backend="triton")
    opts = AttentionOptions(form="approximate")
    torch.manual_seed(0)
    fused = Attention(ctx, opts).cuda()
    plain = Attention(dataclasses.replace(ctx, backend="sdpa"), opts).cuda()
    plain.load_state_dict(fused.state_dict())
    assert fused.backend_for(torch.device("cuda")) == "triton-taylor"
    assert plain.backend_for(torch.device("cuda")) == "chunked-taylor"
    x = torch.randn(2, 300, 128, device="cuda", requires_grad=True)
    yf, yp = fused(x), plain(x)
    torch.testing.assert_close(yf, yp, rtol=1e-3, atol=1e-3)
    gf = torch.autograd.grad(yf.square().sum(), (x, *fused.parameters()))
    gp = torch.autograd.grad(yp.square().sum(), (x, *plain.parameters()))
    for a, b in zip(gf, gp, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-2, atol=1e-2)
