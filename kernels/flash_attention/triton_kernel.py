"""FlashAttention-2 forward and backward kernels in Triton.

Forward: each program owns BLOCK_M query rows of one (batch, head) and streams over key/value
blocks with an online softmax, so the (T, T) score matrix never exists in memory. It writes the
output and the per-row logsumexp (LSE), which is all the backward pass needs to rebuild the
attention probabilities block by block.

Backward (the FlashAttention-2 recipe):
  1. preprocess:  delta_i = sum_d dO_id * O_id                  (one float per query row)
  2. dk/dv:       one program per BLOCK_N keys, loops over query blocks (and over every
                  query head of its GQA group, so dk/dv are summed over the group)
  3. dq:          one program per BLOCK_M queries, loops over key blocks
With P = exp(S - LSE) and dS = P * (dP - delta):  dV = P^T dO,  dK = scale * dS^T Q,
dQ = scale * dS K.

Layout: q is (B, H, T, D), k and v are (B, H_kv, T, D), all contiguous, H_kv divides H.
Softmax runs in base 2 (exp2/log2 are cheaper); scores are pre-multiplied by scale * log2(e).
Accumulation is always float32; inputs may be float16, bfloat16 or float32.
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

# Globals read inside @triton.jit functions must be constexpr.
LOG2E = tl.constexpr(1.4426950408889634)  # log2(e): exp(x) == exp2(x * LOG2E)
LN2 = tl.constexpr(0.6931471805599453)  # ln(2):   log(x) == log2(x) * LN2


# ----------------------------------------------------------------------------------------------
# forward


@triton.jit
def _attn_fwd_kernel(
    Q,  # (B, H, T, D)
    K,  # (B, H_kv, T, D)
    V,  # (B, H_kv, T, D)
    Out,  # (B, H, T, D)
    LSE,  # (B, H, T) float32, written here
    qk_scale,  # softmax scale * log2(e)
    T,  # sequence length
    H: tl.constexpr,  # query heads
    GROUP: tl.constexpr,  # query heads per kv head (H // H_kv)
    HEAD_DIM: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    CAUSAL: tl.constexpr,
    PRECISION: tl.constexpr,  # tl.dot input precision ("ieee" keeps float32 exact, no tf32)
):
    start_m = tl.program_id(0) * BLOCK_M
    bh = tl.program_id(1)  # b * H + h
    b = bh // H
    h = bh % H
    bh_kv = b * (H // GROUP) + h // GROUP  # the kv head this query head reads

    # base offsets of this (b, h) slice; int64 so huge tensors do not overflow
    q_base = bh.to(tl.int64) * T * HEAD_DIM
    kv_base = bh_kv.to(tl.int64) * T * HEAD_DIM

    offs_m = start_m + tl.arange(0, BLOCK_M)  # query rows of this program
    offs_n = tl.arange(0, BLOCK_N)  # key columns within one block
    offs_d = tl.arange(0, HEAD_DIM)
    row_ok = offs_m < T

    q = tl.load(Q + q_base + offs_m[:, None] * HEAD_DIM + offs_d[None, :], mask=row_ok[:, None], other=0.0)

    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)  # running row max (base-2 units)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)  # running softmax denominator
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)  # running numerator @ V

    # with a causal mask, keys past the last query row of this block are never needed
    if CAUSAL:
        hi = tl.minimum(start_m + BLOCK_M, T)
    else:
        hi = T

    for start_n in range(0, hi, BLOCK_N):
        cols = start_n + offs_n
        col_ok = cols < T
        k = tl.load(K + kv_base + cols[:, None] * HEAD_DIM + offs_d[None, :], mask=col_ok[:, None], other=0.0)
        v = tl.load(V + kv_base + cols[:, None] * HEAD_DIM + offs_d[None, :], mask=col_ok[:, None], other=0.0)

        s = tl.dot(q, tl.trans(k), input_precision=PRECISION) * qk_scale  # (BLOCK_M, BLOCK_N)
        keep = col_ok[None, :]
        if CAUSAL:
            keep = keep & (cols[None, :] <= offs_m[:, None])
        s = tl.where(keep, s, float("-inf"))

        # online softmax: rescale what we have so far to the new running max.
        # The first block always contains key 0, which every row may see, so m_new is finite.
        m_new = tl.maximum(m_i, tl.max(s, axis=1))
        alpha = tl.math.exp2(m_i - m_new)
        p = tl.math.exp2(s - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, axis=1)
        acc = acc * alpha[:, None]
        acc = tl.dot(p.to(v.dtype), v, acc, input_precision=PRECISION)
        m_i = m_new

    out = acc / l_i[:, None]
    tl.store(
        Out + q_base + offs_m[:, None] * HEAD_DIM + offs_d[None, :],
        out.to(Out.dtype.element_ty),
        mask=row_ok[:, None],
    )
    # natural-log logsumexp of the scaled scores, per query row
    lse = (m_i + tl.math.log2(l_i)) * LN2
    tl.store(LSE + bh.to(tl.int64) * T + offs_m, lse, mask=row_ok)


# ----------------------------------------------------------------------------------------------
# backward


@triton.jit
def _attn_bwd_preprocess_kernel(
    Out,  # (B, H, T, D)
    DO,  # (B, H, T, D)
    DELTA,  # (B, H, T) float32, written here
    T,
    HEAD_DIM: tl.constexpr,
    BLOCK_M: tl.constexpr,
):
    offs_m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    bh = tl.program_id(1).to(tl.int64)
    offs_d = tl.arange(0, HEAD_DIM)
    row_ok = offs_m < T
    ptrs = bh * T * HEAD_DIM + offs_m[:, None] * HEAD_DIM + offs_d[None, :]
    o = tl.load(Out + ptrs, mask=row_ok[:, None], other=0.0).to(tl.float32)
    do = tl.load(DO + ptrs, mask=row_ok[:, None], other=0.0).to(tl.float32)
    delta = tl.sum(o * do, axis=1)  # (BLOCK_M,) rowsum(dO * O)
    tl.store(DELTA + bh * T + offs_m, delta, mask=row_ok)


@triton.jit
def _attn_bwd_dkdv_kernel(
    Q,  # (B, H, T, D)
    K,  # (B, H_kv, T, D)
    V,  # (B, H_kv, T, D)
    DO,  # (B, H, T, D)
    LSE,  # (B, H, T) float32
    DELTA,  # (B, H, T) float32
    DK,  # (B, H_kv, T, D), written here
    DV,  # (B, H_kv, T, D), written here
    sm_scale,  # softmax scale (natural units)
    T,
    H: tl.constexpr,
    GROUP: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    CAUSAL: tl.constexpr,
    PRECISION: tl.constexpr,
):
    start_n = tl.program_id(0) * BLOCK_N
    bh_kv = tl.program_id(1)  # b * H_kv + h_kv
    b = bh_kv // (H // GROUP)
    h_kv = bh_kv % (H // GROUP)
    qk_scale = sm_scale * LOG2E

    offs_n = start_n + tl.arange(0, BLOCK_N)  # key rows of this program
    offs_m = tl.arange(0, BLOCK_M)  # query rows within one block
    offs_d = tl.arange(0, HEAD_DIM)
    col_ok = offs_n < T

    kv_ptrs = bh_kv.to(tl.int64) * T * HEAD_DIM + offs_n[:, None] * HEAD_DIM + offs_d[None, :]
    k = tl.load(K + kv_ptrs, mask=col_ok[:, None], other=0.0)  # (BLOCK_N, D)
    v = tl.load(V + kv_ptrs, mask=col_ok[:, None], other=0.0)  # (BLOCK_N, D)

    dk = tl.zeros([BLOCK_N, HEAD_DIM], dtype=tl.float32)
    dv = tl.zeros([BLOCK_N, HEAD_DIM], dtype=tl.float32)

    # with a causal mask, queries before this key block never see it
    if CAUSAL:
        lo = (start_n // BLOCK_M) * BLOCK_M
    else:
        lo = 0

    # every query head of the GQA group contributes to this kv head's gradient
    for g in range(GROUP):
        bh = (b * H + h_kv * GROUP + g).to(tl.int64)  # query (b, h) index
        for start_m in range(lo, T, BLOCK_M):
            rows = start_m + offs_m
            row_ok = rows < T
            q_ptrs = bh * T * HEAD_DIM + rows[:, None] * HEAD_DIM + offs_d[None, :]
            q = tl.load(Q + q_ptrs, mask=row_ok[:, None], other=0.0)  # (BLOCK_M, D)
            do = tl.load(DO + q_ptrs, mask=row_ok[:, None], other=0.0)  # (BLOCK_M, D)
            lse = tl.load(LSE + bh * T + rows, mask=row_ok, other=0.0) * LOG2E
            delta = tl.load(DELTA + bh * T + rows, mask=row_ok, other=0.0)

            # work with transposed tiles (keys on rows) so dk/dv accumulate without transposes
            sT = tl.dot(k, tl.trans(q), input_precision=PRECISION) * qk_scale  # (BLOCK_N, BLOCK_M)
            keep = col_ok[:, None] & row_ok[None, :]
            if CAUSAL:
                keep = keep & (rows[None, :] >= offs_n[:, None])
            sT = tl.where(keep, sT, float("-inf"))
            pT = tl.math.exp2(sT - lse[None, :])  # attention probabilities P^T

            dv = tl.dot(pT.to(do.dtype), do, dv, input_precision=PRECISION)
            dpT = tl.dot(v, tl.trans(do), input_precision=PRECISION)  # (BLOCK_N, BLOCK_M) = (dO V^T)^T
            dsT = pT * (dpT - delta[None, :])
            dk = tl.dot(dsT.to(q.dtype), q, dk, input_precision=PRECISION)

    dk = dk * sm_scale
    tl.store(DK + kv_ptrs, dk.to(DK.dtype.element_ty), mask=col_ok[:, None])
    tl.store(DV + kv_ptrs, dv.to(DV.dtype.element_ty), mask=col_ok[:, None])


@triton.jit
def _attn_bwd_dq_kernel(
    Q,  # (B, H, T, D)
    K,  # (B, H_kv, T, D)
    V,  # (B, H_kv, T, D)
    DO,  # (B, H, T, D)
    LSE,  # (B, H, T) float32
    DELTA,  # (B, H, T) float32
    DQ,  # (B, H, T, D), written here
    sm_scale,
    T,
    H: tl.constexpr,
    GROUP: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    CAUSAL: tl.constexpr,
    PRECISION: tl.constexpr,
):
    start_m = tl.program_id(0) * BLOCK_M
    bh = tl.program_id(1)
    b = bh // H
    h = bh % H
    bh_kv = b * (H // GROUP) + h // GROUP
    qk_scale = sm_scale * LOG2E

    offs_m = start_m + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, HEAD_DIM)
    row_ok = offs_m < T

    q_ptrs = bh.to(tl.int64) * T * HEAD_DIM + offs_m[:, None] * HEAD_DIM + offs_d[None, :]
    q = tl.load(Q + q_ptrs, mask=row_ok[:, None], other=0.0)  # (BLOCK_M, D)
    do = tl.load(DO + q_ptrs, mask=row_ok[:, None], other=0.0)  # (BLOCK_M, D)
    lse = tl.load(LSE + bh.to(tl.int64) * T + offs_m, mask=row_ok, other=0.0) * LOG2E
    delta = tl.load(DELTA + bh.to(tl.int64) * T + offs_m, mask=row_ok, other=0.0)
    kv_base = bh_kv.to(tl.int64) * T * HEAD_DIM

    dq = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)

    if CAUSAL:
        hi = tl.minimum(start_m + BLOCK_M, T)
    else:
        hi = T

    for start_n in range(0, hi, BLOCK_N):
        cols = start_n + offs_n
        col_ok = cols < T
        k = tl.load(K + kv_base + cols[:, None] * HEAD_DIM + offs_d[None, :], mask=col_ok[:, None], other=0.0)
        v = tl.load(V + kv_base + cols[:, None] * HEAD_DIM + offs_d[None, :], mask=col_ok[:, None], other=0.0)

        s = tl.dot(q, tl.trans(k), input_precision=PRECISION) * qk_scale  # (BLOCK_M, BLOCK_N)
        keep = row_ok[:, None] & col_ok[None, :]
        if CAUSAL:
            keep = keep & (cols[None, :] <= offs_m[:, None])
        s = tl.where(keep, s, float("-inf"))
        p = tl.math.exp2(s - lse[:, None])

        dp = tl.dot(do, tl.trans(v), input_precision=PRECISION)  # (BLOCK_M, BLOCK_N)
        ds = p * (dp - delta[:, None])
        dq = tl.dot(ds.to(k.dtype), k, dq, input_precision=PRECISION)

    dq = dq * sm_scale
    tl.store(DQ + q_ptrs, dq.to(DQ.dtype.element_ty), mask=row_ok[:, None])


# ----------------------------------------------------------------------------------------------
# host-side launchers


def is_interpreting() -> bool:
    """True when Triton runs kernels on the CPU through its numpy interpreter."""
    knobs = getattr(triton, "knobs", None)  # triton >= 3.4
    if knobs is not None:
        return bool(knobs.runtime.interpret)
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "yes", "on")


def _launch_config(head_dim: int, dtype: torch.dtype) -> dict:
    """Tile sizes and warps (not autotuned).

    Picked so that no kernel spills registers on sm_90 (checked with ptxas, not yet timed on
    hardware). Under the interpreter fewer, larger tiles are faster.
    """
    if is_interpreting():
        return {"BLOCK_M": 32, "BLOCK_N": 32, "num_warps": 1, "num_stages": 1}
    if dtype == torch.float32:  # 4-byte tiles: halve them to bound shared memory and registers
        return {"BLOCK_M": 32, "BLOCK_N": 32, "num_warps": 4, "num_stages": 2}
    if head_dim <= 64:
        return {"BLOCK_M": 64, "BLOCK_N": 64, "num_warps": 4, "num_stages": 2}
    return {"BLOCK_M": 64, "BLOCK_N": 32, "num_warps": 8, "num_stages": 2}


def _precision(dtype: torch.dtype) -> str:
    # float32 inputs: exact fp32 products (tf32 would cost ~1e-3 relative error).
    # 16-bit inputs: the setting is ignored by tl.dot.
    return "ieee" if dtype == torch.float32 else "tf32"


def _config(head_dim: int, dtype: torch.dtype, block_m: int | None, block_n: int | None) -> dict:
    cfg = _launch_config(head_dim, dtype)
    if block_m is not None:
        cfg["BLOCK_M"] = block_m
    if block_n is not None:
        cfg["BLOCK_N"] = block_n
    return cfg


def attention_forward(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    causal: bool,
    scale: float,
    block_m: int | None = None,
    block_n: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fused forward. Inputs contiguous (B, H, T, D) / (B, H_kv, T, D).

    Returns (out (B, H, T, D) in q.dtype, lse (B, H, T) float32 natural-log logsumexp).
    """
    B, H, T, D = q.shape
    H_kv = k.shape[1]
    cfg = _config(D, q.dtype, block_m, block_n)
    o = torch.empty_like(q)
    lse = torch.empty((B, H, T), device=q.device, dtype=torch.float32)
    grid = (triton.cdiv(T, cfg["BLOCK_M"]), B * H)
    _attn_fwd_kernel[grid](
        q, k, v, o, lse,
        scale * LOG2E.value, T,
        H=H, GROUP=H // H_kv, HEAD_DIM=D,
        BLOCK_M=cfg["BLOCK_M"], BLOCK_N=cfg["BLOCK_N"],
        CAUSAL=causal, PRECISION=_precision(q.dtype),
        num_warps=cfg["num_warps"], num_stages=cfg["num_stages"],
    )  # fmt: skip
    return o, lse


def attention_backward(
    do: torch.Tensor,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    o: torch.Tensor,
    lse: torch.Tensor,
    causal: bool,
    scale: float,
    block_m: int | None = None,
    block_n: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fused backward. Returns (dq, dk, dv) shaped and typed like (q, k, v)."""
    B, H, T, D = q.shape
    H_kv = k.shape[1]
    cfg = _config(D, q.dtype, block_m, block_n)
    do = do.contiguous()
    dq = torch.empty_like(q)
    dk = torch.empty_like(k)
    dv = torch.empty_like(v)
    delta = torch.empty_like(lse)  # (B, H, T) float32
    precision = _precision(q.dtype)
    launch = {"num_warps": cfg["num_warps"], "num_stages": cfg["num_stages"]}

    _attn_bwd_preprocess_kernel[(triton.cdiv(T, cfg["BLOCK_M"]), B * H)](
        o, do, delta, T, HEAD_DIM=D, BLOCK_M=cfg["BLOCK_M"], **launch
    )
    _attn_bwd_dkdv_kernel[(triton.cdiv(T, cfg["BLOCK_N"]), B * H_kv)](
        q, k, v, do, lse, delta, dk, dv,
        scale, T,
        H=H, GROUP=H // H_kv, HEAD_DIM=D,
        BLOCK_M=cfg["BLOCK_M"], BLOCK_N=cfg["BLOCK_N"],
        CAUSAL=causal, PRECISION=precision, **launch,
    )  # fmt: skip
    _attn_bwd_dq_kernel[(triton.cdiv(T, cfg["BLOCK_M"]), B * H)](
        q, k, v, do, lse, delta, dq,
        scale, T,
        H=H, GROUP=H // H_kv, HEAD_DIM=D,
        BLOCK_M=cfg["BLOCK_M"], BLOCK_N=cfg["BLOCK_N"],
        CAUSAL=causal, PRECISION=precision, **launch,
    )  # fmt: skip
    return dq, dk, dv
