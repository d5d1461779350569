"""Chunked causal linear attention with Based's second-order Taylor feature map (Triton), forward.

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
normalisers of the NA = d / BA programs are written side by side and summed in PyTorch; the zeroth and
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

BT = 32  # chunk length (tokens per step of the walk)
FEATURES = 256  # second-order state rows per program (BA·D): BA = FEATURES // D feature indices a


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
        ok = rows < T  # rows past T load as 0: zero keys and values add nothing to the states
        q = tl.load(Q + qk_base + rows[:, None] * D + offs_d[None, :], mask=ok[:, None], other=0.0).to(tl.float32)
        k = tl.load(K + qk_base + rows[:, None] * D + offs_d[None, :], mask=ok[:, None], other=0.0).to(tl.float32)
        qa = tl.load(Q + qk_base + rows[:, None] * D + offs_a[None, :], mask=ok[:, None], other=0.0).to(tl.float32)
        ka = tl.load(K + qk_base + rows[:, None] * D + offs_a[None, :], mask=ok[:, None], other=0.0).to(tl.float32)
        v = tl.load(V + v_base + rows[:, None] * DV + offs_v[None, :], mask=ok[:, None], other=0.0).to(tl.float32)
        q, qa = q * scale, qa * scale  # s = q·k with q pre-scaled by 1/√d
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


def forward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, orders_apart: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Contiguous q, k (B, H, T, D), v (B, H, T, DV) → float32 numerators (M, B, H, T, DV) and normalisers
    (M, B, H, T), M = 3 Taylor orders kept apart (``separate``) or 1 summed (``single``)."""
    B, H, T, D = q.shape
    DV = v.shape[-1]
    BA = max(1, min(D, FEATURES // D))
    NA = D // BA
    BV = min(DV, 32)
    M = 3 if orders_apart else 1
    num = torch.empty((NA, M, B, H, T, DV), device=q.device, dtype=torch.float32)
    den = torch.empty((NA, M, B, H, T), device=q.device, dtype=torch.float32)
    _taylor_fwd_kernel[(triton.cdiv(DV, BV), NA, B * H)](
        q, k, v, num, den, T, 1.0 / math.sqrt(D), B * H, D=D, DV=DV, BT=BT, BA=BA, BV=BV, M=M,
        PRECISION=_precision(q.dtype), num_warps=4 if D * BA * BV <= 4096 else 8)
    return num.sum(0), den.sum(0)
