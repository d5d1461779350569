"""Forward+backward timings of attention backends, returned as rows (never printed).

Backends:
    eager    attention_reference (plain PyTorch, materialises (T, T) scores)
    sdpa     torch.nn.functional.scaled_dot_product_attention
    compile  torch.compile(attention_reference)
    triton   the fused FlashAttention kernel (CUDA only; never under TRITON_INTERPRET)

Every row reports the max abs error of the output and of dq, dk, dv against the reference,
computed on the same inputs. A backend that cannot run yields rows whose numbers are None
and whose "error" says why.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F

from ._env import interpreting
from .flash_attention.reference import attention_reference

ALL_BACKENDS = ("eager", "sdpa", "compile", "triton")

_DTYPES = {
    "float32": torch.float32, "fp32": torch.float32, "float": torch.float32,
    "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
}  # fmt: skip


def resolve_dtype(dtype: torch.dtype | str | None, device: torch.device) -> torch.dtype:
    """None -> bfloat16 on CUDA, float32 elsewhere; strings like "bf16" are accepted."""
    if dtype is None:
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if isinstance(dtype, str):
        try:
            return _DTYPES[dtype.lower()]
        except KeyError:
            raise ValueError(f"unknown dtype {dtype!r}; expected one of {sorted(_DTYPES)}") from None
    return dtype


def _triton_native(device: torch.device) -> str | None:
    """None when the Triton backend can run natively on `device`, else the reason it cannot."""
    if device.type != "cuda":
        return "triton backend needs a CUDA device"
    if interpreting():
        return "triton backend is not timed under TRITON_INTERPRET"
    try:
        import triton  # noqa: F401
    except Exception as exc:
        return f"triton failed to import: {exc}"
    return None


def _sdpa(q, k, v, causal):
    return F.scaled_dot_product_attention(q, k, v, is_causal=causal)


def _build(backend: str, device: torch.device) -> Callable:
    """fn(q, k, v, causal) -> out (B, H, T, D)."""
    if backend == "eager":
        return lambda q, k, v, causal: attention_reference(q, k, v, causal=causal)
    if backend == "sdpa":
        return _sdpa
    if backend == "compile":
        compiled = torch.compile(attention_reference, dynamic=True)  # one graph for every T
        return lambda q, k, v, causal: compiled(q, k, v, causal=causal)
    if backend == "triton":
        reason = _triton_native(device)
        if reason:
            raise RuntimeError(reason)
        from .flash_attention.autograd import flash_attention

        return lambda q, k, v, causal: flash_attention(q, k, v, causal=causal)
    raise ValueError(f"unknown backend {backend!r}; expected one of {ALL_BACKENDS}")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _fwd_bwd(fn: Callable, q, k, v, do, causal: bool):
    out = fn(q, k, v, causal)
    dq, dk, dv = torch.autograd.grad(out, (q, k, v), do)
    return out, dq, dk, dv


def _max_err(got: Sequence[torch.Tensor], want: Sequence[torch.Tensor]) -> float:
    return max((g.float() - w.float()).abs().max().item() for g, w in zip(got, want, strict=True))


def _flops_fwd_bwd(batch: int, heads: int, seq_len: int, head_dim: int, causal: bool) -> float:
    # forward: two (T x T x D) matmuls, 2 flops per multiply-add; backward ~2.5x forward
    fwd = 4.0 * batch * heads * seq_len * seq_len * head_dim
    if causal:
        fwd /= 2
    return 3.5 * fwd


def benchmark_attention(
    device: str | torch.device | None = None,
    seq_lens: Iterable[int] = (256, 512, 1024),
    batch: int = 4,
    heads: int = 8,
    head_dim: int = 64,
    dtype: torch.dtype | str | None = None,
    backends: Iterable[str] | None = None,
    repeats: int = 10,
    warmup: int = 2,
    causal: bool = True,
    seed: int = 0,
) -> list[dict]:
    """Time forward+backward of each backend at each sequence length.

    device: default CUDA when available, else CPU. dtype: default bf16 on CUDA, fp32 on CPU.
    backends: default all four; where one cannot run (triton without CUDA) its rows say why.
    Returns one dict per (backend, seq_len) with keys backend, seq_len, ms_fwd_bwd (median),
    tokens_per_s, tflops (approximate), max_abs_err_vs_reference and error (None, or why the
    backend did not run; the numbers are then None).
    """
    device = (
        torch.device(device)
        if device is not None
        else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    )
    dtype = resolve_dtype(dtype, device)
    backends = list(ALL_BACKENDS if backends is None else backends)  # triton too: its row says why it cannot run
    for b in backends:
        if b not in ALL_BACKENDS:
            raise ValueError(f"unknown backend {b!r}; expected one of {ALL_BACKENDS}")

    gen = torch.Generator(device="cpu").manual_seed(seed)
    fns: dict[str, Callable] = {}
    failed: dict[str, str] = {}
    rows: list[dict] = []

    for seq_len in seq_lens:
        shape = (batch, heads, seq_len, head_dim)
        q, k, v, do = (torch.randn(shape, generator=gen).to(device=device, dtype=dtype) for _ in range(4))
        q, k, v = (t.requires_grad_() for t in (q, k, v))
        want = _fwd_bwd(_build("eager", device), q, k, v, do, causal)
        flops = _flops_fwd_bwd(batch, heads, seq_len, head_dim, causal)

        for backend in backends:
            row = {
                "backend": backend, "seq_len": seq_len, "ms_fwd_bwd": None, "tokens_per_s": None,
                "tflops": None, "max_abs_err_vs_reference": None, "error": failed.get(backend),
            }  # fmt: skip
            rows.append(row)
            if backend in failed:
                continue
            try:
                if backend not in fns:
                    fns[backend] = _build(backend, device)
                fn = fns[backend]
                got = _fwd_bwd(fn, q, k, v, do, causal)  # also the first warmup (compiles)
                err = _max_err(got, want)
                for _ in range(max(warmup - 1, 0)):
                    _fwd_bwd(fn, q, k, v, do, causal)
                times = []
                for _ in range(max(repeats, 1)):
                    _sync(device)
                    t0 = time.perf_counter()
                    _fwd_bwd(fn, q, k, v, do, causal)
                    _sync(device)
                    times.append(time.perf_counter() - t0)
            except Exception as exc:  # e.g. torch.compile without a working C++ toolchain
                failed[backend] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                row["error"] = failed[backend]
                continue
            seconds = statistics.median(times)
            row.update(
                ms_fwd_bwd=seconds * 1e3,
                tokens_per_s=batch * seq_len / seconds,
                tflops=flops / seconds / 1e12,
                max_abs_err_vs_reference=err,
            )
    return rows
