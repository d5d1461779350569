"""Triton FlashAttention vs the PyTorch reference: outputs and q/k/v gradients.

Without CUDA these run through the Triton interpreter on the CPU (see conftest.py), so sizes are
tiny. The `gpu` test repeats the comparison with the compiled kernels at a realistic size.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from deconstruct.kernels import attention_reference, benchmark_attention, flash_attention, triton_available

INTERPRET = os.environ.get("TRITON_INTERPRET", "0") == "1"
DEVICE = "cpu" if INTERPRET else "cuda"
KERNELS_DIR = Path(__file__).resolve().parents[2] / "kernels"

# max abs error allowed on the output and on each gradient
TOL = {torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 5e-2}


@functools.cache
def _interpreter_bf16_dot_ok() -> bool:
    """Does tl.dot on bfloat16 work here? The interpreter (triton 3.9) multiplies raw bf16 bits."""
    if not INTERPRET:
        return True
    import triton
    import triton.language as tl

    @triton.jit
    def _dot(A, B, C, N: tl.constexpr):
        r = tl.arange(0, N)
        idx = r[:, None] * N + r[None, :]
        tl.store(C + idx, tl.dot(tl.load(A + idx), tl.load(B + idx)))

    a = torch.eye(16, dtype=torch.bfloat16)
    c = torch.zeros(16, 16)
    _dot[(1,)](a, a, c, N=16)
    return torch.equal(c, torch.eye(16))


def _needs_dtype(dtype: torch.dtype) -> None:
    if dtype == torch.bfloat16 and not _interpreter_bf16_dot_ok():
        pytest.skip(
            "Triton's CPU interpreter computes tl.dot on bfloat16 from the raw uint16 bit patterns "
            "(triton-lang/triton#11584); bf16 is covered by the gpu test"
        )


def _inputs(B, H, H_kv, T, D, dtype, seed=0):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(B, H, T, D, generator=gen)
    k = torch.randn(B, H_kv, T, D, generator=gen)
    v = torch.randn(B, H_kv, T, D, generator=gen)
    do = torch.randn(B, H, T, D, generator=gen)
    q, k, v, do = (t.to(device=DEVICE, dtype=dtype) for t in (q, k, v, do))
    return q.requires_grad_(), k.requires_grad_(), v.requires_grad_(), do


def _fwd_bwd(fn, q, k, v, do, **kw):
    out = fn(q, k, v, **kw)
    return (out, *torch.autograd.grad(out, (q, k, v), do))


def _assert_close(got, want, tol):
    for name, g, w in zip(("out", "dq", "dk", "dv"), got, want, strict=True):
        assert g.shape == w.shape and g.dtype == w.dtype, name
        assert torch.isfinite(g).all(), f"{name} has non-finite values"
        err = (g.float() - w.float()).abs().max().item()
        assert err <= tol, f"{name}: max abs error {err:.3g} > {tol:g}"


def _check(B, H, H_kv, T, D, dtype, causal, scale=None):
    _needs_dtype(dtype)
    q, k, v, do = _inputs(B, H, H_kv, T, D, dtype)
    got = _fwd_bwd(flash_attention, q, k, v, do, causal=causal, scale=scale)
    want = _fwd_bwd(attention_reference, q, k, v, do, causal=causal, scale=scale)
    _assert_close(got, want, TOL[dtype])


# ------------------------------------------------------------------------------------------------
# correctness


@pytest.mark.parametrize("causal", [True, False], ids=["causal", "full"])
@pytest.mark.parametrize(("T", "D"), [(1, 16), (7, 32), (33, 64), (65, 16), (17, 128)])
def test_float32_matches_reference(T, D, causal):
    _check(B=2, H=2, H_kv=2, T=T, D=D, dtype=torch.float32, causal=causal)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
@pytest.mark.parametrize("causal", [True, False], ids=["causal", "full"])
def test_half_precision_matches_reference(dtype, causal):
    _check(B=1, H=2, H_kv=2, T=33, D=32, dtype=dtype, causal=causal)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
def test_half_precision_long_row(dtype):
    _check(B=1, H=1, H_kv=1, T=65, D=64, dtype=dtype, causal=True)


@pytest.mark.parametrize("H_kv", [2, 1])
@pytest.mark.parametrize("causal", [True, False], ids=["causal", "full"])
def test_grouped_query_attention(H_kv, causal):
    # H=4 query heads share H_kv kv heads; dk/dv must sum over each group
    _check(B=2, H=4, H_kv=H_kv, T=33, D=16, dtype=torch.float32, causal=causal)


def test_custom_scale():
    _check(B=1, H=2, H_kv=2, T=17, D=32, dtype=torch.float32, causal=True, scale=0.3)


@pytest.mark.parametrize(("block_m", "block_n"), [(16, 32), (32, 16)])
def test_unequal_tiles(block_m, block_n):
    """BLOCK_M != BLOCK_N exercises the causal loop bounds of every kernel."""
    from deconstruct.kernels.flash_attention import triton_kernel

    q, k, v, do = _inputs(1, 2, 1, 45, 16, torch.float32)
    scale = 16**-0.5
    o, lse = triton_kernel.attention_forward(q, k, v, True, scale, block_m=block_m, block_n=block_n)
    grads = triton_kernel.attention_backward(
        do, q, k, v, o, lse, True, scale, block_m=block_m, block_n=block_n
    )
    want = _fwd_bwd(attention_reference, q, k, v, do, causal=True)
    _assert_close((o, *grads), want, TOL[torch.float32])


def test_logsumexp_saved_by_forward():
    from deconstruct.kernels.flash_attention import triton_kernel

    q, k, v, _ = _inputs(1, 2, 2, 20, 16, torch.float32)
    scale = 16**-0.5
    _, lse = triton_kernel.attention_forward(q, k, v, True, scale)  # (B, H, T)
    scores = (q @ k.transpose(-2, -1)).float() * scale
    scores = scores.masked_fill(torch.ones(20, 20, dtype=torch.bool, device=DEVICE).triu(1), float("-inf"))
    torch.testing.assert_close(lse, torch.logsumexp(scores, dim=-1), atol=1e-5, rtol=1e-5)


def test_non_contiguous_inputs():
    # (B, T, H, D) -> (B, H, T, D) views are not contiguous; the wrapper copies them
    q, k, v, do = (
        t.detach().transpose(1, 2).contiguous().transpose(1, 2)
        for t in _inputs(1, 2, 2, 9, 16, torch.float32)
    )
    assert not q.is_contiguous()
    q, k, v = (t.requires_grad_() for t in (q, k, v))
    got = _fwd_bwd(flash_attention, q, k, v, do, causal=True)
    want = _fwd_bwd(attention_reference, q, k, v, do, causal=True)
    _assert_close(got, want, TOL[torch.float32])


def test_empty_sequence():
    q = torch.randn(1, 2, 0, 16, device=DEVICE, requires_grad=True)
    out = flash_attention(q, q, q)
    assert out.shape == (1, 2, 0, 16)
    out.sum().backward()
    assert q.grad.shape == q.shape


# ------------------------------------------------------------------------------------------------
# input validation and package surface


@pytest.mark.parametrize("D", [24, 48, 96])
def test_non_power_of_two_head_dim_raises(D):
    q = torch.randn(1, 2, 8, D, device=DEVICE)
    with pytest.raises(ValueError, match=rf"head dim must be a power of 2 in \(16, 32, 64, 128\), got {D}"):
        flash_attention(q, q, q)


def test_bad_head_grouping_raises():
    q = torch.randn(1, 3, 8, 16, device=DEVICE)
    kv = torch.randn(1, 2, 8, 16, device=DEVICE)
    with pytest.raises(ValueError, match="multiple of kv heads"):
        flash_attention(q, kv, kv)


def test_triton_available():
    assert triton_available()


def test_package_import_does_not_load_triton():
    """Importing deconstruct.kernels (and the model, which uses it) must not load triton: that happens on
    the first kernel call, so a CPU machine never pays for it."""
    code = "import sys, deconstruct.kernels, deconstruct.model; print('triton' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
    assert importlib.util.find_spec("deconstruct.kernels.flash_attention.triton_kernel") is not None


def test_public_functions_survive_their_subpackages_import():
    import deconstruct.kernels as kernels
    from deconstruct.kernels.flash_attention import reference  # noqa: F401  (loads the subpackage)

    assert callable(kernels.flash_attention) and callable(kernels.attention_reference)


def test_benchmark_rows_on_cpu():
    rows = benchmark_attention(
        device="cpu",
        seq_lens=(16,),
        batch=1,
        heads=2,
        head_dim=16,
        backends=("eager", "sdpa", "triton"),
        repeats=1,
        warmup=1,
    )
    assert [r["backend"] for r in rows] == ["eager", "sdpa", "triton"]
    keys = {"backend", "seq_len", "ms_fwd_bwd", "tokens_per_s", "tflops", "max_abs_err_vs_reference", "error"}
    for row in rows[:2]:
        assert set(row) == keys and row["error"] is None
        assert row["ms_fwd_bwd"] > 0 and row["tokens_per_s"] > 0 and row["tflops"] > 0
        assert row["max_abs_err_vs_reference"] < 1e-5
    assert rows[2]["ms_fwd_bwd"] is None and "CUDA" in rows[2]["error"]  # never timed on the CPU


_COMPILE_SCRIPT = """
import importlib.util, sys
import triton
from triton.backends.compiler import GPUTarget

spec = importlib.util.spec_from_file_location("fa_triton_kernel", sys.argv[1])
tk = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tk)
ptr = "*bf16"
types = {"Q": ptr, "K": ptr, "V": ptr, "Out": ptr, "DO": ptr, "DQ": ptr, "DK": ptr, "DV": ptr,
         "LSE": "*fp32", "DELTA": "*fp32", "qk_scale": "fp32", "sm_scale": "fp32", "T": "i32"}
consts = dict(H=8, GROUP=2, HEAD_DIM=64, BLOCK_M=64, BLOCK_N=64, CAUSAL=True, PRECISION="tf32")
for fn in (tk._attn_fwd_kernel, tk._attn_bwd_preprocess_kernel, tk._attn_bwd_dkdv_kernel, tk._attn_bwd_dq_kernel):
    c = {n: consts[n] for n in fn.arg_names if n in consts}
    sig = {n: "constexpr" if n in c else types[n] for n in fn.arg_names}
    src = triton.compiler.ASTSource(fn, sig, c)
    triton.compile(src, target=GPUTarget("cuda", 90, 32), options={"num_warps": 4, "num_stages": 2})
print("compiled")
"""


def test_kernels_compile_for_sm90():
    """The interpreter skips Triton's compiler; ptxas-compile for sm_90 so GPU-only errors show on CPU too."""
    pytest.importorskip("triton.backends.nvidia", reason="Triton build without the NVIDIA backend")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    path = KERNELS_DIR / "flash_attention" / "triton_kernel.py"
    proc = subprocess.run(
        [sys.executable, "-c", _COMPILE_SCRIPT, str(path)], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 0 and "compiled" in proc.stdout, proc.stderr[-3000:]


# ------------------------------------------------------------------------------------------------
# compiled kernels on a real GPU (pytest -m gpu tests/kernels)


@pytest.mark.gpu
@pytest.mark.skipif(
    not torch.cuda.is_available() or INTERPRET,
    reason="needs a CUDA device and compiled (not interpreted) Triton",
)
@pytest.mark.parametrize(("H", "H_kv", "causal"), [(8, 8, True), (8, 8, False), (8, 2, True)])
def test_gpu_bf16_long_sequence(H, H_kv, causal):
    """T=1024, D=64, bf16: Triton's error vs a float32 reference must stay close to SDPA's own bf16 error."""
    B, T, D = 2, 1024, 64
    q, k, v, do = _inputs(B, H, H_kv, T, D, torch.bfloat16)
    got = _fwd_bwd(flash_attention, q, k, v, do, causal=causal)

    # float32 ground truth from the same bf16 inputs
    q32, k32, v32 = (t.detach().float().requires_grad_() for t in (q, k, v))
    want = _fwd_bwd(attention_reference, q32, k32, v32, do.float(), causal=causal)

    # PyTorch's own bf16 kernel gives the error scale expected from bf16 arithmetic
    def sdpa(q, k, v, causal):
        G = q.shape[1] // k.shape[1]
        k, v = k.repeat_interleave(G, dim=1), v.repeat_interleave(G, dim=1)
        return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)

    base = _fwd_bwd(sdpa, q, k, v, do, causal=causal)
    for name, g, w, b in zip(("out", "dq", "dk", "dv"), got, want, base, strict=True):
        assert g.dtype == torch.bfloat16 and torch.isfinite(g).all(), name
        err = (g.float() - w).abs().max().item()
        sdpa_err = (b.float() - w).abs().max().item()
        assert err <= 3 * sdpa_err + 1e-2 * w.abs().max().item(), (
            f"{name}: triton {err:.3g} vs sdpa {sdpa_err:.3g}"
        )
