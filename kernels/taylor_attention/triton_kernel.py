"""Chunked causal linear attention with Based's second-order Taylor feature map (Triton), forward and backward.

    w(q_i, k_j) = 1 + s + s²/2,  s = q_i·k_j/√d   (= φ(q_i)·φ(k_j), φ = [1, x/d^¼, x⊗x/(√2·√d)])
    num_i,m = Σ_{j≤i} w_m(q_i, k_j)·v_j,   den_i,m = Σ_{j≤i} w_m(q_i, k_j)   (order m = 0, 1, 2)

Structure (as flash-linear-attention's fused-chunk Based kernel): each program walks the sequence one chunk
of BT tokens at a time and keeps the running per-order states in registers —
    S0 = Σ v_j (DV),  S1 = Σ k_j v_jᵀ (d × DV),  S2 = Σ vec(k_j⊗k_j) v_jᵀ (d² × DV)
plus the key sums z1 = Σ k_j, z2 = Σ vec(k_j⊗k_j) for the normaliser (z0, the count of earlier tokens, is
the chunk's start). A chunk reads the states of all earlier chunks (φ_m(q)·S_m), adds the causal BT×BT
Taylor kernel inside the chunk, then writes its own keys into the states.

Unlike Based (d = 16 only), the d² rows of the second-order state are split over the grid: program (i_v, i_a,
bh) owns value columns [i_v·BV, (i_v+1)·BV) and the rows vec(k_a ⊗ k) of the BA feature indices a in
[i_a·BA, (i_a+1)·BA), so each program's state is BA·d × BV whatever d is. The partial numerators and
normalisers of the NA = d / BA programs are written side by side and summed in PyTorch (deterministic, at
the cost of NA float32 copies of the output: 4 for d = 16, 16 for d = 32, 32 for d = 64); the zeroth and
first orders and the intra-chunk kernel are added by the i_a = 0 program only. ``single`` normalisation
writes the three orders summed (M = 1), ``separate`` writes them apart (M = 3); the caller divides.

Arithmetic is float32 throughout (states, features, dots: exact for fp32 inputs, tf32 for 16-bit ones):
the second-order normaliser grows like the number of tokens, beyond half precision for long sequences.
Layout: q, k (B, H, T, D); v (B, H, T, DV); all contiguous, equal head counts.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

# Tile sizes, chosen so that no kernel spills registers on sm_90 (ptxas -v on the compiled kernels, every
# width and both normalisations; not yet timed on a GPU): 16-token chunks (as Based), 32 value columns, 4 warps.
BT = 16  # chunk length (tokens per step of the walk)
VALUE_BLOCK = 32  # value columns per program


def _features(D: int) -> int:
    """Second-order state rows per program (BA·D): 64 up to d = 32, 128 for d = 64."""
    return 64 if D <= 32 else 128


@triton.jit
def _load_chunk(Q, K, V, qk_base, v_base, rows, ok, offs_d, offs_a, offs_v, scale, D: tl.constexpr, DV: tl.constexpr):
    """One chunk's q, k (BT, D), their columns a of this program's second-order rows qa, ka (BT, BA), and v
    (BT, BV), in float32; rows past T load as 0 (zero keys and values add nothing to the states). q and qa
    come pre-scaled by 1/√d, so s = q·k."""
    q = tl.load(Q + qk_base + rows[:, None] * D + offs_d[None, :], mask=ok[:, None], other=0.0).to(tl.float32)
    k = tl.load(K + qk_base + rows[:, None] * D + offs_d[None, :], mask=ok[:, None], other=0.0).to(tl.float32)
    qa = tl.load(Q + qk_base + rows[:, None] * D + offs_a[None, :], mask=ok[:, None], other=0.0).to(tl.float32)
    ka = tl.load(K + qk_base + rows[:, None] * D + offs_a[None, :], mask=ok[:, None], other=0.0).to(tl.float32)
    v = tl.load(V + v_base + rows[:, None] * DV + offs_v[None, :], mask=ok[:, None], other=0.0).to(tl.float32)
    return q * scale, k, qa * scale, ka, v


@triton.jit
def _taylor_fwd_kernel(Q, K, V, NUM, DEN, T, scale, BH, D: tl.constexpr, DV: tl.constexpr, BT: tl.constexpr,
                       BA: tl.constexpr, BV: tl.constexpr, M: tl.constexpr, PRECISION: tl.constexpr):
    i_v, i_a, bh = tl.program_id(0), tl.program_id(1), tl.program_id(2).to(tl.int64)
    offs_t = tl.arange(0, BT)
    offs_d = tl.arange(0, D)
    offs_a = i_a * BA + tl.arange(0, BA)
    offs_v = i_v * BV + tl.arange(0, BV)
    causal = offs_t[:, None] >= offs_t[None, :]  # (BT, BT) inside a chunk
    qk_base, v_base = bh * T * D, bh * T * DV
    # NUM (NA, M, BH, T, DV), DEN (NA, M, BH, T): this program's slot is (i_a, m, bh)
    num_base = (i_a * M * BH + bh) * T * DV
    den_base = (i_a * M * BH + bh) * T

    S0 = tl.zeros([BV], dtype=tl.float32)
    S1 = tl.zeros([D, BV], dtype=tl.float32)
    S2 = tl.zeros([BA * D, BV], dtype=tl.float32)
    z1 = tl.zeros([D], dtype=tl.float32)
    z2 = tl.zeros([BA * D], dtype=tl.float32)
    for t0 in range(0, T, BT):
        rows = t0 + offs_t
        ok = rows < T
        q, k, qa, ka, v = _load_chunk(Q, K, V, qk_base, v_base, rows, ok, offs_d, offs_a, offs_v, scale, D, DV)
        fq2 = tl.reshape(qa[:, :, None] * q[:, None, :], (BT, BA * D))  # (BT, BA·D) rows vec(q_a ⊗ q)
        fk2 = tl.reshape(ka[:, :, None] * k[:, None, :], (BT, BA * D))

        # earlier chunks, second order (this program's share of the d² feature rows): (q·k)²/2
        num2 = tl.dot(fq2, S2, input_precision=PRECISION) * 0.5  # (BT, BV)
        den2 = tl.sum(fq2 * z2[None, :], axis=1) * 0.5  # (BT,)
        num0 = tl.zeros([BT, BV], dtype=tl.float32)
        num1 = tl.zeros([BT, BV], dtype=tl.float32)
        den0 = tl.zeros([BT], dtype=tl.float32)
        den1 = tl.zeros([BT], dtype=tl.float32)
        if i_a == 0:  # zeroth and first orders and the chunk's own Taylor kernel: once per (i_v, bh)
            num0 += S0[None, :]
            den0 += t0
            num1 += tl.dot(q, S1, input_precision=PRECISION)
            den1 += tl.sum(q * z1[None, :], axis=1)
            s = tl.dot(q, tl.trans(k), input_precision=PRECISION)  # (BT, BT)
            keep = causal & ok[None, :]
            w0 = tl.where(keep, 1.0, 0.0)
            w1 = tl.where(keep, s, 0.0)
            w2 = tl.where(keep, 0.5 * s * s, 0.0)
            if M == 1:
                w0 = w0 + w1 + w2
            else:
                num1 += tl.dot(w1, v, input_precision=PRECISION)
                den1 += tl.sum(w1, axis=1)
                num2 += tl.dot(w2, v, input_precision=PRECISION)
                den2 += tl.sum(w2, axis=1)
            num0 += tl.dot(w0, v, input_precision=PRECISION)
            den0 += tl.sum(w0, axis=1)

        out_ptr = rows[:, None] * DV + offs_v[None, :]
        if M == 1:
            tl.store(NUM + num_base + out_ptr, num0 + num1 + num2, mask=ok[:, None])
        else:
            tl.store(NUM + num_base + out_ptr, num0, mask=ok[:, None])
            tl.store(NUM + num_base + BH * T * DV + out_ptr, num1, mask=ok[:, None])
            tl.store(NUM + num_base + 2 * BH * T * DV + out_ptr, num2, mask=ok[:, None])
        if i_v == 0:  # the normaliser does not depend on the value columns: one program writes it
            if M == 1:
                tl.store(DEN + den_base + rows, den0 + den1 + den2, mask=ok)
            else:
                tl.store(DEN + den_base + rows, den0, mask=ok)
                tl.store(DEN + den_base + BH * T + rows, den1, mask=ok)
                tl.store(DEN + den_base + 2 * BH * T + rows, den2, mask=ok)

        # this chunk's keys join the states read by the chunks after it
        S2 = tl.dot(tl.trans(fk2), v, S2, input_precision=PRECISION)
        z2 += tl.sum(fk2, axis=0)
        S1 = tl.dot(tl.trans(k), v, S1, input_precision=PRECISION)
        z1 += tl.sum(k, axis=0)
        S0 += tl.sum(v, axis=0)


def _precision(dtype: torch.dtype) -> str:
    return "ieee" if dtype == torch.float32 else "tf32"


def _blocks(D: int, DV: int) -> tuple[int, int, int]:
    """(BA, NA, BV): feature indices a per program, feature blocks, value columns per program."""
    BA = max(1, min(D, _features(D) // D))
    return BA, D // BA, min(DV, VALUE_BLOCK)


def forward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, orders_apart: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Contiguous q, k (B, H, T, D), v (B, H, T, DV) → float32 numerators (M, B, H, T, DV) and normalisers
    (M, B, H, T), M = 3 Taylor orders kept apart (``separate``) or 1 summed (``single``)."""
    B, H, T, D = q.shape
    DV = v.shape[-1]
    BA, NA, BV = _blocks(D, DV)
    M = 3 if orders_apart else 1
    num = torch.empty((NA, M, B, H, T, DV), device=q.device, dtype=torch.float32)
    den = torch.empty((NA, M, B, H, T), device=q.device, dtype=torch.float32)
    _taylor_fwd_kernel[(triton.cdiv(DV, BV), NA, B * H)](
        q, k, v, num, den, T, 1.0 / math.sqrt(D), B * H, D=D, DV=DV, BT=BT, BA=BA, BV=BV, M=M,
        PRECISION=_precision(q.dtype), num_warps=4)
    return num.sum(0), den.sum(0)


# ----------------------------------------------------------------------------------------------
# backward: gradients of the numerators g_m = ∂L/∂num_m (BT, DV) and normalisers gz_m = ∂L/∂den_m (BT,)
#
#   P_m,ij = g_m,i·v_j + gz_m,i,   dS_ij = P_1,ij + s_ij·P_2,ij   (∂w_1/∂s = 1, ∂w_2/∂s = s)
#   dq_i = scale·Σ_{j≤i} dS_ij k_j,   dk_j = Σ_{i≥j} dS_ij q'_i (q' = scale·q),   dv_j = Σ_{i≥j} Σ_m w_m,ij g_m,i
#
# ``single`` (M = 1) has one g and one gz shared by the three orders. Two walks, each split over the grid as
# the forward (value columns × blocks of the d² second-order rows): dq walks forward with the key states
# S1, S2, z1, z2; dk and dv walk backward with the query states R_m = Σ_{i later} φ_m(q_i) g_m,iᵀ and
# Y_m = Σ_{i later} gz_m,i φ_m(q_i). The normaliser terms gz enter dq, dk once, in the i_v = 0 programs.
# Partial dq, dk (per value block and feature block) and dv (per feature block) are summed in PyTorch.


@triton.jit
def _load_grads(DNUM, DDEN, bh, rows, ok, offs_v, T, BH, DV: tl.constexpr, M: tl.constexpr):
    """g_0, g_1, g_2 (BT, BV) and gz_1, gz_2 (BT,) of one chunk (M = 1: the same tensors three times)."""
    ptr = bh * T * DV + rows[:, None] * DV + offs_v[None, :]
    g0 = tl.load(DNUM + ptr, mask=ok[:, None], other=0.0)
    gz1 = tl.load(DDEN + bh * T + rows, mask=ok, other=0.0)
    if M == 1:
        g1, g2, gz2 = g0, g0, gz1
    else:
        g1 = tl.load(DNUM + BH * T * DV + ptr, mask=ok[:, None], other=0.0)
        g2 = tl.load(DNUM + 2 * BH * T * DV + ptr, mask=ok[:, None], other=0.0)
        gz1 = tl.load(DDEN + BH * T + bh * T + rows, mask=ok, other=0.0)
        gz2 = tl.load(DDEN + 2 * BH * T + bh * T + rows, mask=ok, other=0.0)
    return g0, g1, g2, gz1, gz2


@triton.jit
def _taylor_bwd_dq_kernel(Q, K, V, DNUM, DDEN, DQ, T, scale, BH, D: tl.constexpr, DV: tl.constexpr,
                          BT: tl.constexpr, BA: tl.constexpr, NA: tl.constexpr, BV: tl.constexpr, M: tl.constexpr,
                          PRECISION: tl.constexpr):
    i_v, i_a, bh = tl.program_id(0), tl.program_id(1), tl.program_id(2).to(tl.int64)
    offs_t = tl.arange(0, BT)
    offs_d = tl.arange(0, D)
    offs_a = i_a * BA + tl.arange(0, BA)
    offs_v = i_v * BV + tl.arange(0, BV)
    causal = offs_t[:, None] >= offs_t[None, :]
    qk_base, v_base = bh * T * D, bh * T * DV
    dq_base = ((i_v * NA + i_a) * BH + bh) * T * D  # DQ (NV, NA, BH, T, D)

    S1 = tl.zeros([D, BV], dtype=tl.float32)
    S2 = tl.zeros([BA * D, BV], dtype=tl.float32)
    z1 = tl.zeros([D], dtype=tl.float32)
    z2 = tl.zeros([BA * D], dtype=tl.float32)
    for t0 in range(0, T, BT):
        rows = t0 + offs_t
        ok = rows < T
        q, k, qa, ka, v = _load_chunk(Q, K, V, qk_base, v_base, rows, ok, offs_d, offs_a, offs_v, scale, D, DV)
        g0, g1, g2, gz1, gz2 = _load_grads(DNUM, DDEN, bh, rows, ok, offs_v, T, BH, DV, M)
        fk2 = tl.reshape(ka[:, :, None] * k[:, None, :], (BT, BA * D))

        # earlier chunks, second order: Σ_a q'_a · (g_2·S2ᵀ + gz_2·z2)[a, :]
        G = tl.dot(g2, tl.trans(S2), input_precision=PRECISION)  # (BT, BA·D)
        if i_v == 0:
            G += gz2[:, None] * z2[None, :]
        dq = tl.sum(tl.reshape(G, (BT, BA, D)) * qa[:, :, None], axis=1)  # (BT, D)
        if i_a == 0:  # first order, and the chunk itself
            dq += tl.dot(g1, tl.trans(S1), input_precision=PRECISION)
            s = tl.dot(q, tl.trans(k), input_precision=PRECISION)  # (BT, BT)
            p1 = tl.dot(g1, tl.trans(v), input_precision=PRECISION)
            if M == 1:
                p2 = p1
            else:
                p2 = tl.dot(g2, tl.trans(v), input_precision=PRECISION)
            if i_v == 0:
                dq += gz1[:, None] * z1[None, :]
                p1 += gz1[:, None]
                p2 += gz2[:, None]
            ds = tl.where(causal & ok[None, :], p1 + s * p2, 0.0)
            dq += tl.dot(ds, k, input_precision=PRECISION)
        tl.store(DQ + dq_base + rows[:, None] * D + offs_d[None, :], dq * scale, mask=ok[:, None])

        S2 = tl.dot(tl.trans(fk2), v, S2, input_precision=PRECISION)
        z2 += tl.sum(fk2, axis=0)
        S1 = tl.dot(tl.trans(k), v, S1, input_precision=PRECISION)
        z1 += tl.sum(k, axis=0)


@triton.jit
def _taylor_bwd_dkv_kernel(Q, K, V, DNUM, DDEN, DK, DVP, T, scale, BH, D: tl.constexpr, DV: tl.constexpr,
                           BT: tl.constexpr, BA: tl.constexpr, NA: tl.constexpr, BV: tl.constexpr, M: tl.constexpr,
                           PRECISION: tl.constexpr):
    i_v, i_a, bh = tl.program_id(0), tl.program_id(1), tl.program_id(2).to(tl.int64)
    offs_t = tl.arange(0, BT)
    offs_d = tl.arange(0, D)
    offs_a = i_a * BA + tl.arange(0, BA)
    offs_v = i_v * BV + tl.arange(0, BV)
    later = offs_t[:, None] <= offs_t[None, :]  # (key j, query i): i ≥ j inside a chunk
    qk_base, v_base = bh * T * D, bh * T * DV
    dk_base = ((i_v * NA + i_a) * BH + bh) * T * D  # DK (NV, NA, BH, T, D)
    dv_base = (i_a * BH + bh) * T * DV  # DVP (NA, BH, T, DV)

    R0 = tl.zeros([BV], dtype=tl.float32)
    R1 = tl.zeros([D, BV], dtype=tl.float32)
    R2 = tl.zeros([BA * D, BV], dtype=tl.float32)
    Y1 = tl.zeros([D], dtype=tl.float32)
    Y2 = tl.zeros([BA * D], dtype=tl.float32)
    n_chunks = tl.cdiv(T, BT)
    for c in range(0, n_chunks):
        rows = (n_chunks - 1 - c) * BT + offs_t  # the last chunk first
        ok = rows < T
        q, k, qa, ka, v = _load_chunk(Q, K, V, qk_base, v_base, rows, ok, offs_d, offs_a, offs_v, scale, D, DV)
        g0, g1, g2, gz1, gz2 = _load_grads(DNUM, DDEN, bh, rows, ok, offs_v, T, BH, DV, M)
        fq2 = tl.reshape(qa[:, :, None] * q[:, None, :], (BT, BA * D))
        fk2 = tl.reshape(ka[:, :, None] * k[:, None, :], (BT, BA * D))

        # later chunks, second order
        dv = tl.dot(fk2, R2, input_precision=PRECISION) * 0.5  # (BT, BV)
        Hm = tl.dot(v, tl.trans(R2), input_precision=PRECISION)  # (BT, BA·D)
        if i_v == 0:
            Hm += Y2[None, :]
        dk = tl.sum(tl.reshape(Hm, (BT, BA, D)) * ka[:, :, None], axis=1)  # (BT, D)
        if i_a == 0:  # zeroth and first orders, and the chunk itself
            dv += R0[None, :] + tl.dot(k, R1, input_precision=PRECISION)
            dk += tl.dot(v, tl.trans(R1), input_precision=PRECISION)
            sT = tl.dot(k, tl.trans(q), input_precision=PRECISION)  # (BT keys, BT queries)
            p1 = tl.dot(v, tl.trans(g1), input_precision=PRECISION)
            if M == 1:
                p2 = p1
            else:
                p2 = tl.dot(v, tl.trans(g2), input_precision=PRECISION)
            if i_v == 0:
                dk += Y1[None, :]
                p1 += gz1[None, :]
                p2 += gz2[None, :]
            dsT = tl.where(later, p1 + sT * p2, 0.0)
            dk += tl.dot(dsT, q, input_precision=PRECISION)
            w1 = tl.where(later, sT, 0.0)
            w2 = tl.where(later, 0.5 * sT * sT, 0.0)
            w0 = tl.where(later, 1.0, 0.0)
            if M == 1:
                dv += tl.dot(w0 + w1 + w2, g0, input_precision=PRECISION)
            else:
                dv += tl.dot(w0, g0, input_precision=PRECISION)
                dv += tl.dot(w1, g1, input_precision=PRECISION)
                dv += tl.dot(w2, g2, input_precision=PRECISION)
        tl.store(DK + dk_base + rows[:, None] * D + offs_d[None, :], dk, mask=ok[:, None])
        tl.store(DVP + dv_base + rows[:, None] * DV + offs_v[None, :], dv, mask=ok[:, None])

        R2 = tl.dot(tl.trans(fq2), g2, R2, input_precision=PRECISION)
        Y2 += tl.sum(gz2[:, None] * fq2, axis=0)
        R1 = tl.dot(tl.trans(q), g1, R1, input_precision=PRECISION)
        Y1 += tl.sum(gz1[:, None] * q, axis=0)
        R0 += tl.sum(g0, axis=0)


def backward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, dnum: torch.Tensor, dden: torch.Tensor):
    """Gradients of the numerators (M, B, H, T, DV) and normalisers (M, B, H, T) → dq, dk, dv in the inputs'
    dtypes (q, k, v contiguous as in ``forward``)."""
    B, H, T, D = q.shape
    DV = v.shape[-1]
    BA, NA, BV, M = _blocks(D, DV) + (dnum.shape[0],)
    NV = DV // BV
    dnum, dden = dnum.float().contiguous(), dden.float().contiguous()
    dq = torch.empty((NV, NA, B, H, T, D), device=q.device, dtype=torch.float32)
    dk = torch.empty_like(dq)
    dv = torch.empty((NA, B, H, T, DV), device=q.device, dtype=torch.float32)
    args = dict(D=D, DV=DV, BT=BT, BA=BA, NA=NA, BV=BV, M=M, PRECISION=_precision(q.dtype),
                num_warps=4)
    grid = (NV, NA, B * H)
    _taylor_bwd_dq_kernel[grid](q, k, v, dnum, dden, dq, T, 1.0 / math.sqrt(D), B * H, **args)
    _taylor_bwd_dkv_kernel[grid](q, k, v, dnum, dden, dk, dv, T, 1.0 / math.sqrt(D), B * H, **args)
    return dq.sum((0, 1)).to(q.dtype), dk.sum((0, 1)).to(k.dtype), dv.sum(0).to(v.dtype)
