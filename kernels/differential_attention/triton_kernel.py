"""Differential attention's two softmax maps in one pass over K/V (Triton), forward.

    o1 = softmax(scale·Q1·K1ᵀ [causal])·V,   o2 = softmax(scale·Q2·K2ᵀ [causal])·V

Each program owns BLOCK_M query rows of one head and streams the key/value blocks once, keeping two online
softmaxes (running max, denominator, numerator) side by side: K1 and K2 blocks are read for the two score
tiles and the V block is read once for both. It writes o1, o2 and both log-sum-exps; the mixer combines
y = o1 − λ·o2 (see ``autograd.py``, which also runs the backward through the FlashAttention kernels).

Layout: q1, k1, q2, k2 (B, H, T, D); v (B, H, T, DV) — DiffAttn values are 2·D wide; all contiguous.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ..flash_attention.triton_kernel import LN2, LOG2E, _config, _precision


@triton.jit
def _online_update(m_i, l_i, acc, s, v, PRECISION: tl.constexpr):
    """One key block of an online softmax (base 2): the new (max, denominator, numerator)."""
    m_new = tl.maximum(m_i, tl.max(s, axis=1))
    alpha = tl.math.exp2(m_i - m_new)
    p = tl.math.exp2(s - m_new[:, None])
    l_i = l_i * alpha + tl.sum(p, axis=1)
    acc = tl.dot(p.to(v.dtype), v, acc * alpha[:, None], input_precision=PRECISION)
    return m_new, l_i, acc


@triton.jit
def _diff_fwd_kernel(Q1, K1, Q2, K2, V, O1, O2, LSE1, LSE2, qk_scale, T, HEAD_DIM: tl.constexpr,
                     V_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, CAUSAL: tl.constexpr,
                     PRECISION: tl.constexpr):
    start_m = tl.program_id(0) * BLOCK_M
    bh = tl.program_id(1).to(tl.int64)
    offs_m = start_m + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, HEAD_DIM)
    offs_v = tl.arange(0, V_DIM)
    row_ok = offs_m < T
    qk_base = bh * T * HEAD_DIM
    v_base = bh * T * V_DIM
    q_ptr = qk_base + offs_m[:, None] * HEAD_DIM + offs_d[None, :]
    q1 = tl.load(Q1 + q_ptr, mask=row_ok[:, None], other=0.0)
    q2 = tl.load(Q2 + q_ptr, mask=row_ok[:, None], other=0.0)
    m1 = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    m2 = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l1 = tl.zeros([BLOCK_M], dtype=tl.float32)
    l2 = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc1 = tl.zeros([BLOCK_M, V_DIM], dtype=tl.float32)
    acc2 = tl.zeros([BLOCK_M, V_DIM], dtype=tl.float32)
    if CAUSAL:
        hi = tl.minimum(start_m + BLOCK_M, T)
    else:
        hi = T
    for start_n in range(0, hi, BLOCK_N):
        cols = start_n + offs_n
        col_ok = cols < T
        k_ptr = qk_base + cols[:, None] * HEAD_DIM + offs_d[None, :]
        k1 = tl.load(K1 + k_ptr, mask=col_ok[:, None], other=0.0)
        k2 = tl.load(K2 + k_ptr, mask=col_ok[:, None], other=0.0)
        v = tl.load(V + v_base + cols[:, None] * V_DIM + offs_v[None, :], mask=col_ok[:, None], other=0.0)
        keep = col_ok[None, :]
        if CAUSAL:
            keep = keep & (cols[None, :] <= offs_m[:, None])
        s1 = tl.where(keep, tl.dot(q1, tl.trans(k1), input_precision=PRECISION) * qk_scale, float("-inf"))
        s2 = tl.where(keep, tl.dot(q2, tl.trans(k2), input_precision=PRECISION) * qk_scale, float("-inf"))
        m1, l1, acc1 = _online_update(m1, l1, acc1, s1, v, PRECISION)
        m2, l2, acc2 = _online_update(m2, l2, acc2, s2, v, PRECISION)
    o_ptr = v_base + offs_m[:, None] * V_DIM + offs_v[None, :]
    tl.store(O1 + o_ptr, (acc1 / l1[:, None]).to(O1.dtype.element_ty), mask=row_ok[:, None])
    tl.store(O2 + o_ptr, (acc2 / l2[:, None]).to(O2.dtype.element_ty), mask=row_ok[:, None])
    tl.store(LSE1 + bh * T + offs_m, (m1 + tl.math.log2(l1)) * LN2, mask=row_ok)
    tl.store(LSE2 + bh * T + offs_m, (m2 + tl.math.log2(l2)) * LN2, mask=row_ok)


def forward(q1, k1, q2, k2, v, causal: bool, scale: float):
    """Contiguous inputs → (o1, o2) (B, H, T, DV) in v's dtype and (lse1, lse2) (B, H, T) float32."""
    B, H, T, D = q1.shape
    DV = v.shape[-1]
    cfg = _config(max(D, DV), q1.dtype, None, None)
    o1, o2 = torch.empty_like(v), torch.empty_like(v)
    lse1 = torch.empty((B, H, T), device=q1.device, dtype=torch.float32)
    lse2 = torch.empty_like(lse1)
    _diff_fwd_kernel[(triton.cdiv(T, cfg["BLOCK_M"]), B * H)](
        q1, k1, q2, k2, v, o1, o2, lse1, lse2, scale * LOG2E.value, T, HEAD_DIM=D, V_DIM=DV,
        BLOCK_M=cfg["BLOCK_M"], BLOCK_N=cfg["BLOCK_N"], CAUSAL=causal, PRECISION=_precision(q1.dtype),
        num_warps=cfg["num_warps"], num_stages=cfg["num_stages"])
    return o1, o2, lse1, lse2
