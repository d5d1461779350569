"""The chunked Taylor linear attention kernels (``form: approximate``) against the mixer's PyTorch chunked form
and its step-by-step recurrent form: output and the gradients of q, k, v (backward kernels against autograd
through the PyTorch form), causal, odd lengths (not multiples of the kernel's 16-token chunk), query/key widths
16, 32, 64, value widths 16, 32, 64, both normalisations, fp32 and fp16. On the CPU the kernel runs under TRITON_INTERPRET=1 (set in conftest), so the shapes stay small."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from _support import assert_modules_agree

import deconstruct.kernels
from deconstruct.builtin._forms import taylor_attention_recurrent
from deconstruct.kernels import taylor_attention, taylor_attention_reference

DEVICE = "cpu" if os.environ.get("TRITON_INTERPRET", "0") == "1" else "cuda"
# max abs error of the output and of each gradient (fp16: inputs rounded to 11 bits, then fp32/tf32 inside)
TOL = {torch.float32: 1e-4, torch.float16: 2e-2}


def _inputs(T: int, D: int, DV: int, normalization: str, dtype: torch.dtype, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    H = 2 if D == 16 else 1  # wider heads run d²/64 programs per head, slow under the interpreter
    q, k = (torch.randn(1, H, T, D, generator=gen) for _ in range(2))
    v, do = (torch.randn(1, H, T, DV, generator=gen) for _ in range(2))
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
    (torch.float32, 50, 16, 16, "single"),
    (torch.float32, 37, 32, 16, "single"),
    (torch.float32, 37, 16, 32, "separate"),
    (torch.float32, 37, 16, 64, "separate"),  # two value blocks of 32 columns
    (torch.float32, 21, 64, 16, "single"),  # the d² second-order rows over 32 programs
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
    q2[:, :, 40:] += 1.0  # token 40 onwards, inside the chunk of tokens 32…47
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


def test_mixer_uses_the_kernel_where_triton_runs():
    """``auto`` and ``triton`` → ``triton-taylor`` where Triton runs (causal, fitting widths), the PyTorch
    chunked form elsewhere (``auto`` never picks the kernel on the CPU); an unavailable ``triton`` is an error,
    as for every other form; other backends keep the chunked form."""
    import dataclasses

    from deconstruct._errors import RunError
    from deconstruct.builtin._attention import Attention
    from deconstruct.builtin.attention import AttentionOptions
    from deconstruct.model._attend import triton_runs_on
    from deconstruct.spec import MixerContext

    ctx = MixerContext(d_model=64, heads=4, layer_index=0, n_layers=1, max_seq_len=64, backend="triton")
    opts = AttentionOptions(form="approximate")
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    auto = dataclasses.replace(ctx, backend="auto")
    assert Attention(auto, opts).backend_for(cpu) == "chunked-taylor"
    assert Attention(dataclasses.replace(ctx, backend="sdpa"), opts).backend_for(cuda) == "chunked-taylor"
    with pytest.raises(RunError, match="triton"):
        Attention(ctx, opts).backend_for(cpu)
    if triton_runs_on(cuda):  # triton imports (and CUDA or the interpreter is there)
        assert Attention(ctx, opts).backend_for(cuda) == Attention(auto, opts).backend_for(cuda) == "triton-taylor"
        assert Attention(auto, AttentionOptions(form="approximate", qk_dim=8)).backend_for(cuda) == "chunked-taylor"
        assert Attention(dataclasses.replace(auto, causal=False), opts).backend_for(cuda) == "chunked-taylor"
    else:
        assert Attention(auto, opts).backend_for(cuda) == "chunked-taylor"


def test_mixer_through_the_kernel_equals_the_chunked_form(monkeypatch):
    """The mixer's wiring (GQA heads repeated, projections, output) with the kernel path forced on this device."""
    from deconstruct.builtin._attention import Attention
    from deconstruct.builtin.attention import AttentionOptions
    from deconstruct.spec import MixerContext

    ctx = MixerContext(d_model=32, heads=2, layer_index=0, n_layers=1, max_seq_len=40, backend="auto")
    torch.manual_seed(0)
    fused, plain = (Attention(ctx, AttentionOptions(form="approximate", kv_heads=1)).to(DEVICE) for _ in range(2))
    plain.load_state_dict(fused.state_dict())
    monkeypatch.setattr(fused, "backend_for", lambda device: "triton-taylor")
    x = torch.randn(2, 40, 32, device=DEVICE, requires_grad=True)
    yf, yp = fused(x), plain(x)
    torch.testing.assert_close(yf, yp, rtol=1e-4, atol=1e-4)
    gf = torch.autograd.grad(yf.square().sum(), (x, *fused.parameters()))
    gp = torch.autograd.grad(yp.square().sum(), (x, *plain.parameters()))
    for a, b in zip(gf, gp, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.gpu
def test_attention_mixer_runs_the_kernel_with_backend_triton():
    """``form: approximate`` with ``backend: triton`` (and ``auto``) goes through the kernels, output and every
    gradient equal to the PyTorch chunked form."""
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
    assert_modules_agree(fused, plain, x)


_COMPILE_SCRIPT = """
import importlib.util, sys
import triton
from triton.backends.compiler import GPUTarget

spec = importlib.util.spec_from_file_location("taylor_triton_kernel", sys.argv[1])
tk = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tk)
ptr = "*bf16"
types = {"Q": ptr, "K": ptr, "V": ptr, "NUM": "*fp32", "DEN": "*fp32", "DNUM": "*fp32", "DDEN": "*fp32",
         "DQ": "*fp32", "DK": "*fp32", "DVP": "*fp32", "T": "i32", "scale": "fp32", "BH": "i32"}
D, DV, M = 32, 64, 3  # 16 feature blocks, 2 value blocks, the three orders apart
BA, NA, BV = tk._blocks(D, DV)
consts = dict(D=D, DV=DV, BT=tk.BT, BA=BA, NA=NA, BV=BV, M=M, PRECISION="tf32")
for fn in (tk._taylor_fwd_kernel, tk._taylor_bwd_dq_kernel, tk._taylor_bwd_dkv_kernel):
    c = {n: consts[n] for n in fn.arg_names if n in consts}
    sig = {n: "constexpr" if n in c else types[n] for n in fn.arg_names}
    triton.compile(triton.compiler.ASTSource(fn, sig, c), target=GPUTarget("cuda", 90, 32),
                   options={"num_warps": 4, "num_stages": 1})
print("compiled")
"""


def test_kernels_compile_for_sm90():
    """The interpreter skips Triton's compiler; ptxas-compile for sm_90 so GPU-only errors show on CPU too."""
    pytest.importorskip("triton.backends.nvidia", reason="Triton build without the NVIDIA backend")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    path = Path(deconstruct.kernels.__file__).parent / "taylor_attention" / "triton_kernel.py"
    proc = subprocess.run([sys.executable, "-c", _COMPILE_SCRIPT, str(path)], capture_output=True, text=True, env=env)
    assert proc.returncode == 0 and "compiled" in proc.stdout, proc.stderr[-3000:]
