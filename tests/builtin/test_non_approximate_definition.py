"""``form: non_approximate`` at the mixer level against its written-out definition (Xue, Moosavi & Aletras
2025, arXiv 2510.11602): q = SiLU(x·W_Q), k = x·W_K, v = x·W_V per head; one score per token
s_j = (q_j ⊙ k_j)·1/√d_h summed over the head width; out_i = Σ_{j≤i} e^{s_j} v_j / Σ_{j≤i} e^{s_j};
heads concatenated, then W_O. Computed here with an explicit O(T²) loop in float64."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from deconstruct.builtin._attention import Attention
from deconstruct.builtin.attention import AttentionOptions
from deconstruct.spec import MixerContext


def by_hand(x: torch.Tensor, W: torch.Tensor, W_O: torch.Tensor, H: int) -> torch.Tensor:
    """x (B, T, d); W the fused (3·d, d) weight [W_Q | W_K | W_V]; W_O (d, d)."""
    B, T, d = x.shape
    D = d // H
    W_Q, W_K, W_V = W[:d], W[d : 2 * d], W[2 * d :]
    out = torch.zeros(B, T, d, dtype=x.dtype)
    for b in range(B):
        for h in range(H):
            cols = slice(h * D, (h + 1) * D)
            q = F.silu(x[b] @ W_Q[cols].T)  # (T, D)
            k = x[b] @ W_K[cols].T
            v = x[b] @ W_V[cols].T
            s = (q * k).sum(-1) / math.sqrt(D)  # (T,)
            for i in range(T):
                num = torch.zeros(D, dtype=x.dtype)
                den = torch.zeros((), dtype=x.dtype)
                for j in range(i + 1):
                    w = torch.exp(s[j])
                    num = num + w * v[j]
                    den = den + w
                out[b, i, cols] = num / den
    return out @ W_O.T


@pytest.mark.parametrize("chunk_size", [None, 4, 5])
def test_non_approximate_equals_its_definition(chunk_size):
    d, H, T = 8, 2, 13
    ctx = MixerContext(d_model=d, heads=H, layer_index=0, n_layers=2, max_seq_len=T, causal=True,
                       positions="learned", backend="sdpa", bias=False)
    opts = AttentionOptions(form="non_approximate", chunk_size=chunk_size)
    opts.check(ctx)
    torch.manual_seed(0)
    mixer = Attention(ctx, opts).to(torch.float64)
    with torch.no_grad():  # larger weights: scores spread over several units, so the weighting matters
        mixer.qkv.weight.mul_(3.0)
    x = torch.randn(2, T, d, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = mixer(x)
        ref = by_hand(x, mixer.qkv.weight, mixer.out_proj.weight, H)
    assert y.dtype == torch.float64
    torch.testing.assert_close(y, ref, rtol=0, atol=1e-10)
    # the scores are far from uniform: a plain causal mean of v would not pass
    s_spread = (F.silu(x @ mixer.qkv.weight[:d].T) * (x @ mixer.qkv.weight[d : 2 * d].T)).std()
    assert s_spread > 0.5
