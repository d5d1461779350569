"""Non-softmax mathematical forms of attention (Xue, Moosavi & Aletras 2025, "Deconstructing Attention",
arXiv 2510.11602, principle "mathematical form"), written as plain PyTorch.

- :func:`taylor_attention` — ``form: approximate``: the second-order Taylor feature map of exp(q·k/√d)
  used by Based (Arora et al. 2024, arXiv 2402.18668), φ(x) = [1, x/d^{1/4}, (x⊗x)/(√2·√d)], so that
  φ(q)·φ(k) = 1 + s + s²/2 with s = q·k/√d, in causal linear-attention form. Computed chunk-wise: inside a
  chunk of C tokens the C×C Taylor kernel (no features materialised); across chunks the running state
  Σ φ(k_j) v_jᵀ (kept per Taylor order, φ never materialised) by a cumulative sum over chunks. Cost per
  token O(C·d + d²·d_v) — linear in T, but cubic in the query/key width (which is why Based uses d = 16);
  below a few hundred tokens the quadratic kernel inside one chunk is the cheaper part.
  :func:`taylor_attention_recurrent` is the step-by-step (RNN) form, the reference in the tests.
- :func:`prefix_softmax` — ``form: non_approximate``: no pairwise similarity, one score s_j per token;
  out_i = Σ_{j≤i} e^{s_j} v_j / Σ_{j≤i} e^{s_j}. Computed chunk-wise against the running maximum
  M_i = max_{j≤i} s_j, so that every exponent is ≤ 0 and every denominator ≥ 1 (no overflow whatever the
  scores). Linear in T.
- :func:`elementwise_attention` — ``form: sigmoid | relu``: elementwise scores with causal masking,
  divided by the number of keys each query sees (see the function).

Every function takes (B, H, T, ·) tensors with equal head counts, computes in fp32 at least (under bf16
autocast too) and returns (B, H, T, D_v) in the dtype of ``v``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

EPS = 1e-6  # floor of |normaliser| per Taylor order under ``normalization: separate`` (see _safe)


def _full_precision(*xs: torch.Tensor) -> list[torch.Tensor]:
    dtype = torch.promote_types(xs[0].dtype, torch.float32)
    return [x.to(dtype) for x in xs]


def _no_autocast(device: torch.device):
    return torch.autocast(device.type, enabled=False)


def _pad_to_chunks(x: torch.Tensor, C: int, dim: int) -> torch.Tensor:
    """Zero-pad ``dim`` up to a multiple of C (padding goes at the end: causally invisible)."""
    pad = (-x.shape[dim]) % C
    if pad == 0:
        return x
    shape = list(x.shape)
    shape[dim] = pad
    return torch.cat([x, x.new_zeros(shape)], dim=dim)


# -- form: approximate ---------------------------------------------------------------------------------------
def taylor_features(x: torch.Tensor) -> torch.Tensor:
    """φ(x) = [1, x/d^{1/4}, vec(x⊗x)/(√2·√d)]: (..., d) → (..., 1 + d + d²); φ(q)·φ(k) = 1 + s + s²/2.

    Used by the recurrent form and for checks; the chunked form keeps the three orders' states apart and
    never materialises φ (the same numbers, without the gather and the wide feature tensors)."""
    d = x.shape[-1]
    second = (x.unsqueeze(-1) * x.unsqueeze(-2)).flatten(-2) / (math.sqrt(2.0) * math.sqrt(d))
    return torch.cat([x.new_ones(*x.shape[:-1], 1), x / d**0.25, second], dim=-1)


def _total(parts: list[torch.Tensor]) -> torch.Tensor:
    """Σ parts as a tensor (the builtin ``sum`` starts from the int 0)."""
    out = parts[0]
    for p in parts[1:]:
        out = out + p
    return out


def _term_slices(d: int) -> list[slice]:
    """Where the zeroth, first and second-order terms sit in φ's last dimension."""
    return [slice(0, 1), slice(1, 1 + d), slice(1 + d, None)]


def _combine(nums: list[torch.Tensor], dens: list[torch.Tensor], normalization: str) -> torch.Tensor:
    """nums[m] (…, T, D_v), dens[m] (…, T) for Taylor orders m = 0, 1, 2 → the output (…, T, D_v)."""
    if normalization == "single":  # one normaliser: Σ_m num_m / Σ_m den_m (a convex combination: 1+s+s²/2 > 0)
        return _total(nums) / _total(dens).unsqueeze(-1)
    # separate (the paper's): each order's weights divided by their own row sum, so every order's row sums
    # to 1, and the three normalised orders are added.
    return _total([n / _safe(d).unsqueeze(-1) for n, d in zip(nums, dens, strict=True)])


def _safe(den: torch.Tensor) -> torch.Tensor:
    """A normaliser kept away from 0 with its sign: the first-order weights s_ij are signed, so their row sum
    can vanish; |den| is floored at EPS (rows then no longer sum to exactly 1 — only in that degenerate case)."""
    sign = torch.where(den < 0, -1.0, 1.0).to(den.dtype)
    return sign * den.abs().clamp_min(EPS)


def _outer(x: torch.Tensor) -> torch.Tensor:
    """vec(x⊗x): (…, d) → (…, d²)."""
    return (x.unsqueeze(-1) * x.unsqueeze(-2)).flatten(-2)


def _write_states(k: torch.Tensor, v1: torch.Tensor) -> list[torch.Tensor]:
    """Per-order states of keys k (…, C, d) and values v1 (…, C, E), summed over the C tokens:
    Σ v1_j (…, E), Σ k_j v1_jᵀ (…, d, E), Σ vec(k_j⊗k_j) v1_jᵀ (…, d², E)."""
    return [v1.sum(-2), k.transpose(-1, -2) @ v1, _outer(k).transpose(-1, -2) @ v1]


def _read_states(q: torch.Tensor, states: list[torch.Tensor]) -> list[torch.Tensor]:
    """Each order's contribution φ_m(q_i)·state_m for queries q (…, C, d): three (…, C, E) tensors."""
    d = q.shape[-1]
    s0, s1, s2 = states
    r0 = s0.unsqueeze(-2).expand(*q.shape[:-1], s0.shape[-1])
    r1 = (q @ s1) / math.sqrt(d)  # φ_1(q)·φ_1(k) = q·k/√d
    r2 = (_outer(q) @ s2) / (2 * d)  # φ_2(q)·φ_2(k) = (q·k)²/(2d)
    return [r0, r1, r2]


def taylor_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    causal: bool = True,
    normalization: str = "single",
    chunk_size: int = 64,
) -> torch.Tensor:
    """Second-order Taylor linear attention. q, k (B, H, T, d); v (B, H, T, D_v) → (B, H, T, D_v).

    out_i = Σ_m φ_m(q_i)·Σ_{j≤i} φ_m(k_j) v_jᵀ / normaliser, with the normaliser(s) of :func:`_combine`.
    A column of ones appended to v carries the normaliser through the same matmuls as the numerator.
    """
    out_dtype = v.dtype
    with _no_autocast(q.device):
        q, k, v = _full_precision(q, k, v)
        B, H, T, d = q.shape
        v1 = torch.cat([v, v.new_ones(B, H, T, 1)], dim=-1)  # (B, H, T, D_v + 1)

        def finish(acc: list[torch.Tensor]) -> torch.Tensor:
            if normalization == "single":
                acc = [_total(acc)]
            return _combine([a[..., :-1] for a in acc], [a[..., -1] for a in acc], normalization)

        if not causal:  # every query sees the whole sequence: one global state
            return finish(_read_states(q, _write_states(k, v1))).to(out_dtype)

        C = max(1, min(chunk_size, T))
        qc, kc, vc = (_pad_to_chunks(t, C, 2) for t in (q, k, v1))
        N = qc.shape[2] // C
        qc, kc, vc = qc.view(B, H, N, C, d), kc.view(B, H, N, C, d), vc.view(B, H, N, C, -1)

        # inside each chunk: the Taylor kernel of the C×C scores, causally masked (no features materialised)
        s = (qc @ kc.transpose(-1, -2)) / math.sqrt(d)  # (B, H, N, C, C)
        mask = torch.ones(C, C, dtype=torch.bool, device=q.device).tril()
        zero = s.new_zeros(())
        if normalization == "single":
            terms = [torch.where(mask, 1 + s + 0.5 * s * s, zero)]
        else:
            terms = [mask.to(s.dtype).expand_as(s), torch.where(mask, s, zero), torch.where(mask, 0.5 * s * s, zero)]
        acc = [a @ vc for a in terms]  # (B, H, N, C, D_v + 1)

        # across chunks: chunk n ≥ 1 reads the states of chunks 0 … n−1 (a cumulative sum over chunks)
        if N > 1:
            states = [st.cumsum(dim=2) for st in _write_states(kc[:, :, :-1], vc[:, :, :-1])]
            reads = _read_states(qc[:, :, 1:], states)  # (B, H, N−1, C, D_v + 1) per order
            if normalization == "single":
                reads = [reads[0] + reads[1] + reads[2]]
            acc = [torch.cat([a[:, :, :1], a[:, :, 1:] + r], dim=2) for a, r in zip(acc, reads, strict=True)]
        return finish(acc).reshape(B, H, N * C, -1)[:, :, :T].to(out_dtype)


def taylor_attention_recurrent(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, normalization: str = "single"
) -> torch.Tensor:
    """The same causal map as :func:`taylor_attention`, one token at a time (the RNN form):
    S_t = S_{t−1} + φ(k_t) v_tᵀ, z_t = z_{t−1} + φ(k_t), out_t = φ(q_t)·S_t / φ(q_t)·z_t (per order).
    O(T) sequential steps: a reference and a decoding form, not a training path."""
    out_dtype = v.dtype
    q, k, v = _full_precision(q, k, v)
    B, H, T, d = q.shape
    parts = _term_slices(d)
    fq, fk = taylor_features(q), taylor_features(k)  # (B, H, T, F)
    S = q.new_zeros(B, H, fk.shape[-1], v.shape[-1])
    z = q.new_zeros(B, H, fk.shape[-1])
    outs = []
    for t in range(T):
        S = S + fk[:, :, t, :, None] * v[:, :, t, None, :]
        z = z + fk[:, :, t]
        f = fq[:, :, t]  # (B, H, F)
        nums = [(f[..., p, None] * S[..., p, :]).sum(-2) for p in parts]  # (B, H, D_v)
        dens = [(f[..., p] * z[..., p]).sum(-1) for p in parts]  # (B, H)
        outs.append(_combine(nums, dens, normalization))
    return torch.stack(outs, dim=2).to(out_dtype)


def taylor_weights(q: torch.Tensor, k: torch.Tensor, causal: bool = True, normalization: str = "single") -> torch.Tensor:
    """The (B, H, T, T) mixing matrix that :func:`taylor_attention` applies to the values (O(T²), diagnostics)."""
    q, k = _full_precision(q, k)
    T, d = q.shape[-2], q.shape[-1]
    s = (q @ k.transpose(-1, -2)) / math.sqrt(d)
    mask = torch.ones(T, T, dtype=torch.bool, device=q.device)
    mask = mask.tril() if causal else mask
    zero = s.new_zeros(())
    terms = [mask.to(s.dtype).expand_as(s), torch.where(mask, s, zero), torch.where(mask, 0.5 * s * s, zero)]
    if normalization == "single":
        a = terms[0] + terms[1] + terms[2]
        return a / a.sum(-1, keepdim=True)
    return _total([t / _safe(t.sum(-1, keepdim=True)) for t in terms])


# -- form: non_approximate -------------------------------------------------------------------------------------
def prefix_softmax(s: torch.Tensor, v: torch.Tensor, causal: bool = True, chunk_size: int = 64) -> torch.Tensor:
    """out_i = Σ_{j≤i} e^{s_j} v_j / Σ_{j≤i} e^{s_j}. s (B, H, T) one score per token; v (B, H, T, D_v).

    Chunk-wise, against the running maximum M_i = max_{j≤i} s_j (a constant for autograd: the ratio does not
    depend on it). Inside a chunk, weights e^{s_j − M_i} (j ≤ i); earlier chunks enter through their sums
    L_n = Σ_{j∈n} e^{s_j − R_n} v_j taken against R_n, the running maximum at the end of chunk n, rescaled by
    e^{R_n − R_{n−1}} ≤ 1 and e^{R_{n−1} − M_i} ≤ 1. The token attaining M_i contributes exactly 1 to the
    denominator, so it is ≥ 1: no overflow, no 0/0. Cost O(T·C·D_v + (T/C)²·D_v).
    Non-causal: a softmax over all tokens, the same output at every position.
    """
    out_dtype = v.dtype
    with _no_autocast(s.device):
        s, v = _full_precision(s, v)
        B, H, T = s.shape
        if not causal:
            w = torch.softmax(s, dim=-1)  # (B, H, T)
            return (w.unsqueeze(-2) @ v).expand(B, H, T, v.shape[-1]).to(out_dtype)
        C = max(1, min(chunk_size, T))
        sc, vc = _pad_to_chunks(s, C, 2), _pad_to_chunks(v, C, 2)
        N = sc.shape[2] // C
        with torch.no_grad():
            M = sc.cummax(dim=-1).values.view(B, H, N, C)  # running max M_i
        sc, vc = sc.view(B, H, N, C), vc.view(B, H, N, C, -1)
        R = M[..., -1]  # (B, H, N): running max at the end of each chunk

        mask = torch.ones(C, C, dtype=torch.bool, device=s.device).tril()
        ninf = s.new_tensor(float("-inf"))
        e = torch.where(mask, sc.unsqueeze(-2) - M.unsqueeze(-1), ninf)  # (B, H, N, C_i, C_j), ≤ 0
        W = e.exp()
        num = W @ vc  # (B, H, N, C, D_v)
        den = W.sum(-1)  # (B, H, N, C)
        if N > 1:
            e_n = (sc - R.unsqueeze(-1)).exp()  # (B, H, N, C), ≤ 1
            L = (e_n.unsqueeze(-2) @ vc).squeeze(-2)  # (B, H, N, D_v)
            Z = e_n.sum(-1)  # (B, H, N)
            R_prev = torch.cat([R[..., :1], R[..., :-1]], dim=-1)  # R_{n−1} (R_0 for n = 0, unused)
            earlier = torch.ones(N, N, dtype=torch.bool, device=s.device).tril(-1)  # n' < n
            G = torch.where(earlier, R.unsqueeze(-2) - R_prev.unsqueeze(-1), ninf).exp()  # (B, H, N, N)
            S_in, Z_in = G @ L, (G @ Z.unsqueeze(-1)).squeeze(-1)  # state entering chunk n (ref. R_{n−1})
            first = torch.zeros(N, dtype=torch.bool, device=s.device)
            first[0] = True
            f = torch.where(first[:, None], ninf, R_prev.unsqueeze(-1) - M).exp()  # (B, H, N, C), ≤ 1
            num = num + f.unsqueeze(-1) * S_in.unsqueeze(-2)
            den = den + f * Z_in.unsqueeze(-1)
        out = num / den.unsqueeze(-1)
        return out.reshape(B, H, N * C, -1)[:, :, :T].to(out_dtype)


def prefix_softmax_weights(s: torch.Tensor, causal: bool = True) -> torch.Tensor:
    """The (B, H, T, T) mixing matrix of :func:`prefix_softmax`: W_ij = e^{s_j} / Σ_{j'≤i} e^{s_j'} (diagnostics)."""
    (s,) = _full_precision(s)
    T = s.shape[-1]
    scores = s.unsqueeze(-2).expand(*s.shape[:-1], T, T)
    if causal:
        mask = torch.ones(T, T, dtype=torch.bool, device=s.device).tril()
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(-1)


# -- form: sigmoid | relu ------------------------------------------------------------------------------------
SCORE_FUNCTIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"sigmoid": torch.sigmoid, "relu": F.relu}


def elementwise_weights(q: torch.Tensor, k: torch.Tensor, fn: str, causal: bool = True, scale: float | None = None) -> torch.Tensor:
    """A_ij = f(q_i·k_j·scale) / n_i with f = sigmoid or relu, masked to j ≤ i, n_i the number of keys
    query i sees (i + 1, 0-based; T without the mask). Dividing ReLU attention by the sequence length is
    Wortsman et al. 2023 ("Replacing softmax with ReLU in Vision Transformers", arXiv 2309.08586); the
    causal analogue divides by the keys actually visible, so the weights stay O(1) at every position. The
    same length normalisation is used for sigmoid (cf. Ramapuram et al. 2024, arXiv 2409.04431, whose
    −log n bias plays that role). q (B, H, T, d), k (B, H, S, d) → (B, H, T, S)."""
    q, k = _full_precision(q, k)
    T, S = q.shape[-2], k.shape[-2]
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    a = SCORE_FUNCTIONS[fn]((q @ k.transpose(-1, -2)) * scale)  # (B, H, T, S)
    if causal:
        mask = torch.ones(T, S, dtype=torch.bool, device=q.device).tril(S - T)
        a = a.masked_fill(~mask, 0.0)
        count = torch.arange(S - T + 1, S + 1, device=q.device, dtype=a.dtype)  # keys seen by each query
    else:
        count = torch.full((T,), float(S), device=q.device, dtype=a.dtype)
    return a / count[:, None]


def elementwise_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, fn: str, causal: bool = True, scale: float | None = None
) -> torch.Tensor:
    """out = A·V with A from :func:`elementwise_weights` (quadratic in T, like eager attention)."""
    with _no_autocast(q.device):
        (vf,) = _full_precision(v)
        return (elementwise_weights(q, k, fn, causal, scale) @ vf).to(v.dtype)
