"""The fused sigmoid / ReLU attention kernel against its PyTorch reference (the attention mixer's own
``form: sigmoid | relu`` maths): output and every gradient, causal and not, GQA, odd lengths, fp32 and fp16.
On the CPU the kernels run under TRITON_INTERPRET=1 (set in conftest), so the shapes stay small."""

from __future__ import annotations

import os

import pytest
import torch

from deconstruct.kernels import elementwise_attention, elementwise_attention_reference

DEVICE = "cpu" if os.environ.get("TRITON_INTERPRET", "0") == "1" else "cuda"
TOL = {torch.float32: 1e-4, torch.float16: 1e-2}  # max abs error of the output and of each gradient


def _run(impl, q, k, v, do, **kw):
    out = impl(q, k, v, **kw)
    return (out, *torch.autograd.grad(out, (q, k, v), do))


@pytest.mark.parametrize("fn", ["sigmoid", "relu"])
@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("dtype, H, H_kv, T, D", [(torch.float32, 2, 1, 37, 16), (torch.float16, 2, 2, 45, 32)])
def test_matches_reference_with_every_gradient(fn, causal, dtype, H, H_kv, T, D):
    gen = torch.Generator().manual_seed(0)
    q, do = (torch.randn(1, H, T, D, generator=gen) for _ in range(2))
    k, v = (torch.randn(1, H_kv, T, D, generator=gen) for _ in range(2))
    q, k, v, do = (t.to(DEVICE, dtype) for t in (q, k, v, do))
    got = _run(elementwise_attention, *(t.clone().requires_grad_() for t in (q, k, v)), do, fn=fn, causal=causal)
    want = _run(elementwise_attention_reference, *(t.float().requires_grad_() for t in (q, k, v)), do.float(),
                fn=fn, causal=causal)
    for name, g, w in zip(("out", "dq", "dk", "dv"), got, want, strict=True):
        assert g.dtype == dtype and g.shape == w.shape, name
        err = (g.float() - w).abs().max().item()
        assert err <= TOL[dtype], f"{name}: max abs error {err:.3g}"


def test_causal_output_ignores_later_tokens():
    gen = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(1, 2, 40, 16, generator=gen).to(DEVICE) for _ in range(3))
    y = elementwise_attention(q, k, v, "sigmoid", causal=True)
    k2, v2 = k.clone(), v.clone()
    k2[:, :, 20:] += 1.0
    v2[:, :, 20:] -= 1.0
    y2 = elementwise_attention(q, k2, v2, "sigmoid", causal=True)
    assert torch.equal(y[:, :, :20], y2[:, :, :20]) and not torch.allclose(y[:, :, 20:], y2[:, :, 20:])


def test_rejects_an_unknown_function():
    q = torch.randn(1, 1, 4, 16, device=DEVICE)
    with pytest.raises(ValueError, match="sigmoid"):
        elementwise_attention(q, q, q, "tanh")


@pytest.mark.gpu
@pytest.mark.parametrize("form", ["sigmoid", "relu"])
def test_attention_mixer_runs_the_kernel_with_backend_triton(form):
    """``form: sigmoid | relu`` with ``backend: triton`` goes through the fused kernel, equal to the eager form."""
    import dataclasses

    from deconstruct.builtin._attention import Attention
    from deconstruct.builtin.attention import AttentionOptions
    from deconstruct.spec import MixerContext

    ctx = MixerContext(d_model=128, heads=4, layer_index=0, n_layers=1, max_seq_len=256, backend="triton")
    torch.manual_seed(0)
    fused = Attention(ctx, AttentionOptions(form=form)).cuda()
    eager = Attention(dataclasses.replace(ctx, backend="sdpa"), AttentionOptions(form=form)).cuda()
    eager.load_state_dict(fused.state_dict())
    assert fused.backend_for(torch.device("cuda")) == "triton" and eager.backend_for(torch.device("cuda")) == "eager"
    x = torch.randn(2, 256, 128, device="cuda")
    torch.testing.assert_close(fused(x), eager(x), rtol=1e-3, atol=1e-3)
