"""Fused sigmoid / ReLU attention (no softmax normaliser) in Triton, forward and backward.

    out_i = (1 / n_i) · Σ_j f(scale · q_i·k_j) · v_j,   f = sigmoid or relu,
    j ≤ i and n_i = i + 1 (causal), or every j and n_i = T (non-causal)

— the length-normalised elementwise attention of ``form: sigmoid | relu`` (see ``reference.py``). With no
normaliser over the row there is no online softmax: each program streams key/value blocks and accumulates
f(S)·V directly (FlashSigmoid-style), so the (T, T) map never exists in memory.

Backward, with P = f(S) masked and N = diag(1/n):  dV = (N·P)ᵀ·dO,  dP = N·(dO·Vᵀ),  dS = dP ⊙ f'(S),
dK = scale · dSᵀ·Q,  dQ = scale · dS·K; one program per key block for dK/dV (looping over the query heads
of its GQA group), one per query block for dQ.

Layout: q (B, H, T, D), k and v (B, H_kv, T, D), contiguous, H_kv | H. Accumulation in float32.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ..flash_attention.triton_kernel import _config, _precision

FUNCTIONS = {"sigmoid": 0, "relu": 1}


@triton.jit
def _score_fn(s, FN: tl.constexpr):
    """f(s) and f'(s) for FN = 0 (sigmoid) or 1 (relu)."""
    if FN == 0:
        p = tl.sigmoid(s)
        return p, p * (1.0 - p)
    else:
        return tl.maximum(s, 0.0), tl.where(s > 0.0, 1.0, 0.0)


@triton.jit
def _fwd_kernel(Q, K, V, Out, scale, T, H: tl.constexpr, GROUP: tl.constexpr, HEAD_DIM: tl.constexpr,
                BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, CAUSAL: tl.constexpr, FN: tl.constexpr,
                PRECISION: tl.constexpr):
    start_m = tl.program_id(0) * BLOCK_M
    bh = tl.program_id(1)
    b = bh // H
    h = bh % H
    bh_kv = b * (H // GROUP) + h // GROUP
    q_base = bh.to(tl.int64) * T * HEAD_DIM
    kv_base = bh_kv.to(tl.int64) * T * HEAD_DIM
    offs_m = start_m + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, HEAD_DIM)
    row_ok = offs_m < T
    q = tl.load(Q + q_base + offs_m[:, None] * HEAD_DIM + offs_d[None, :], mask=row_ok[:, None], other=0.0)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    if CAUSAL:
        hi = tl.minimum(start_m + BLOCK_M, T)
    else:
        hi = T
    for start_n in range(0, hi, BLOCK_N):
        cols = start_n + offs_n
        col_ok = cols < T
        k = tl.load(K + kv_base + cols[:, None] * HEAD_DIM + offs_d[None, :], mask=col_ok[:, None], other=0.0)
        v = tl.load(V + kv_base + cols[:, None] * HEAD_DIM + offs_d[None, :], mask=col_ok[:, None], other=0.0)
        s = tl.dot(q, tl.trans(k), input_precision=PRECISION) * scale  # (BLOCK_M, BLOCK_N)
        p, _ = _score_fn(s, FN)
        keep = col_ok[None, :]
        if CAUSAL:
            keep = keep & (cols[None, :] <= offs_m[:, None])
        p = tl.where(keep, p, 0.0)
        acc = tl.dot(p.to(v.dtype), v, acc, input_precision=PRECISION)
    if CAUSAL:
        n = (offs_m + 1).to(tl.float32)
    else:
        n = tl.zeros([BLOCK_M], dtype=tl.float32) + T
    tl.store(Out + q_base + offs_m[:, None] * HEAD_DIM + offs_d[None, :], (acc / n[:, None]).to(Out.dtype.element_ty),
             mask=row_ok[:, None])


@triton.jit
def _bwd_dkdv_kernel(Q, K, V, DO, DK, DV, scale, T, H: tl.constexpr, GROUP: tl.constexpr, HEAD_DIM: tl.constexpr,
                     BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, CAUSAL: tl.constexpr, FN: tl.constexpr,
                     PRECISION: tl.constexpr):
    start_n = tl.program_id(0) * BLOCK_N
    bh_kv = tl.program_id(1)
    H_kv = H // GROUP
    b = bh_kv // H_kv
    h_kv = bh_kv % H_kv
    kv_base = bh_kv.to(tl.int64) * T * HEAD_DIM
    offs_n = start_n + tl.arange(0, BLOCK_N)
    offs_m0 = tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    col_ok = offs_n < T
    k = tl.load(K + kv_base + offs_n[:, None] * HEAD_DIM + offs_d[None, :], mask=col_ok[:, None], other=0.0)
    v = tl.load(V + kv_base + offs_n[:, None] * HEAD_DIM + offs_d[None, :], mask=col_ok[:, None], other=0.0)
    dk = tl.zeros([BLOCK_N, HEAD_DIM], dtype=tl.float32)
    dv = tl.zeros([BLOCK_N, HEAD_DIM], dtype=tl.float32)
    if CAUSAL:
        lo = (start_n // BLOCK_M) * BLOCK_M  # earlier queries never see these keys
    else:
        lo = 0
    for g in range(GROUP):
        q_base = (b * H + h_kv * GROUP + g).to(tl.int64) * T * HEAD_DIM
        for start_m in range(lo, T, BLOCK_M):
            rows = start_m + offs_m0
            row_ok = rows < T
            q = tl.load(Q + q_base + rows[:, None] * HEAD_DIM + offs_d[None, :], mask=row_ok[:, None], other=0.0)
            do = tl.load(DO + q_base + rows[:, None] * HEAD_DIM + offs_d[None, :], mask=row_ok[:, None], other=0.0)
            s = tl.dot(q, tl.trans(k), input_precision=PRECISION) * scale  # (BLOCK_M, BLOCK_N)
            p, dp_ds = _score_fn(s, FN)
            keep = row_ok[:, None] & col_ok[None, :]
            if CAUSAL:
                keep = keep & (offs_n[None, :] <= rows[:, None])
                inv_n = 1.0 / (rows + 1).to(tl.float32)
            else:
                inv_n = tl.zeros([BLOCK_M], dtype=tl.float32) + 1.0 / T
            pn = tl.where(keep, p * inv_n[:, None], 0.0)
            dv = tl.dot(tl.trans(pn).to(do.dtype), do, dv, input_precision=PRECISION)
            dpn = tl.dot(do, tl.trans(v), input_precision=PRECISION) * inv_n[:, None]
            ds = tl.where(keep, dpn * dp_ds, 0.0)
            dk = tl.dot(tl.trans(ds).to(q.dtype), q, dk, input_precision=PRECISION)
    ptr = kv_base + offs_n[:, None] * HEAD_DIM + offs_d[None, :]
    tl.store(DK + ptr, (dk * scale).to(DK.dtype.element_ty), mask=col_ok[:, None])
    tl.store(DV + ptr, dv.to(DV.dtype.element_ty), mask=col_ok[:, None])


@triton.jit
def _bwd_dq_kernel(Q, K, V, DO, DQ, scale, T, H: tl.constexpr, GROUP: tl.constexpr, HEAD_DIM: tl.constexpr,
                   BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, CAUSAL: tl.constexpr, FN: tl.constexpr,
                   PRECISION: tl.constexpr):
    start_m = tl.program_id(0) * BLOCK_M
    bh = tl.program_id(1)
    b = bh // H
    h = bh % H
    bh_kv = b * (H // GROUP) + h // GROUP
    q_base = bh.to(tl.int64) * T * HEAD_DIM
    kv_base = bh_kv.to(tl.int64) * T * HEAD_DIM
    offs_m = start_m + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, HEAD_DIM)
    row_ok = offs_m < T
    q = tl.load(Q + q_base + offs_m[:, None] * HEAD_DIM + offs_d[None, :], mask=row_ok[:, None], other=0.0)
    do = tl.load(DO + q_base + offs_m[:, None] * HEAD_DIM + offs_d[None, :], mask=row_ok[:, None], other=0.0)
    if CAUSAL:
        inv_n = 1.0 / (offs_m + 1).to(tl.float32)
        hi = tl.minimum(start_m + BLOCK_M, T)
    else:
        inv_n = tl.zeros([BLOCK_M], dtype=tl.float32) + 1.0 / T
        hi = T
    dq = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    for start_n in range(0, hi, BLOCK_N):
        cols = start_n + offs_n
        col_ok = cols < T
        k = tl.load(K + kv_base + cols[:, None] * HEAD_DIM + offs_d[None, :], mask=col_ok[:, None], other=0.0)
        v = tl.load(V + kv_base + cols[:, None] * HEAD_DIM + offs_d[None, :], mask=col_ok[:, None], other=0.0)
        s = tl.dot(q, tl.trans(k), input_precision=PRECISION) * scale
        _, dp_ds = _score_fn(s, FN)
        keep = col_ok[None, :]
        if CAUSAL:
            keep = keep & (cols[None, :] <= offs_m[:, None])
        dpn = tl.dot(do, tl.trans(v), input_precision=PRECISION) * inv_n[:, None]
        ds = tl.where(keep, dpn * dp_ds, 0.0)
        dq = tl.dot(ds.to(k.dtype), k, dq, input_precision=PRECISION)
    tl.store(DQ + q_base + offs_m[:, None] * HEAD_DIM + offs_d[None, :], (dq * scale).to(DQ.dtype.element_ty),
             mask=row_ok[:, None])


def forward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, fn: str, causal: bool, scale: float) -> torch.Tensor:
    """Fused forward; contiguous inputs (B, H, T, D) / (B, H_kv, T, D) → out (B, H, T, D) in q.dtype."""
    B, H, T, D = q.shape
    cfg = _config(D, q.dtype, None, None)
    o = torch.empty_like(q)
    _fwd_kernel[(triton.cdiv(T, cfg["BLOCK_M"]), B * H)](
        q, k, v, o, scale, T, H=H, GROUP=H // k.shape[1], HEAD_DIM=D, BLOCK_M=cfg["BLOCK_M"],
        BLOCK_N=cfg["BLOCK_N"], CAUSAL=causal, FN=FUNCTIONS[fn], PRECISION=_precision(q.dtype),
        num_warps=cfg["num_warps"], num_stages=cfg["num_stages"])
    return o


def backward(do: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, fn: str, causal: bool,
             scale: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fused backward: (dq, dk, dv) shaped and typed like (q, k, v)."""
    B, H, T, D = q.shape
    H_kv = k.shape[1]
    cfg = _config(D, q.dtype, None, None)
    do = do.contiguous()
    dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
    common = dict(H=H, GROUP=H // H_kv, HEAD_DIM=D, BLOCK_M=cfg["BLOCK_M"], BLOCK_N=cfg["BLOCK_N"], CAUSAL=causal,
                  FN=FUNCTIONS[fn], PRECISION=_precision(q.dtype), num_warps=cfg["num_warps"],
                  num_stages=cfg["num_stages"])
    _bwd_dkdv_kernel[(triton.cdiv(T, cfg["BLOCK_N"]), B * H_kv)](q, k, v, do, dk, dv, scale, T, **common)
    _bwd_dq_kernel[(triton.cdiv(T, cfg["BLOCK_M"]), B * H)](q, k, v, do, dq, scale, T, **common)
    return dq, dk, dv
