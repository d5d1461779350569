"""nn.Module of the ``biformer`` mixer (see ``biformer.py``; Zhu et al. 2023, BiFormer, arXiv 2303.08125).

Standard multi-head attention (the ``attention`` mixer's ``qkv`` / ``out_proj``, same parameters) whose
keys are restricted by a per-(batch, head) region routing (:func:`route`, under ``no_grad``: top-k is not
differentiable, in float32 at least, on the projected and, with rope, rotated queries and keys; the causal
per-token region queries are prefix means, a cumulative sum inside each region). With ``backend: auto`` the
token level runs FlexAttention with a per-(batch, head) block mask on CUDA, and on the CPU, non-causal, at
O(T·top_k·S) with each region's routed regions gathered (:mod:`._blocked`). Causal on the CPU, and with any
other backend, it runs the dense reference: SDPA with the (B, H, T, T) :func:`routing_mask` (:mod:`._masked`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from deconstruct.model import MixerContext

from . import _blocked, _flex
from ._masked import MaskedAttention
from .attention import AttentionOptions


def region_means(x: torch.Tensor, S: int, prefix: bool) -> torch.Tensor:
    """x (B, H, T, D) in regions of S tokens (R = ⌈T/S⌉, the last may be shorter) →
    prefix: (B, H, T, D), token i's mean over its region's tokens up to and including i;
    else: (B, H, R, D), each region's mean. A cumulative sum inside each region: O(T·D)."""
    T = x.shape[-2]
    R = -(-T // S)
    xr = F.pad(x, (0, 0, 0, R * S - T)).unflatten(2, (R, S))  # (B, H, R, S, D), zero padding at the end
    count = (T - torch.arange(R, device=x.device) * S).clamp(max=S)  # (R,): real tokens of each region
    if not prefix:
        return xr.sum(-2) / count.view(R, 1).to(x.dtype)
    csum = xr.cumsum(-2) / torch.arange(1, S + 1, device=x.device, dtype=x.dtype).view(S, 1)
    return csum.flatten(2, 3)[:, :, :T]


@torch.no_grad()
def route(q: torch.Tensor, k: torch.Tensor, S: int, top_k: int, causal: bool,
          shared: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """The region routing (fp32 at least, no gradient). q, k (B, H, T, D) →

    ``shared``: one decision for all heads, on the all-head affinity Σ_h q̄_h·k̄_h (the paper's: region means
    of the full queries and keys), the chosen regions repeated over the heads; else one per head.

    causal: (regions, valid), both (B, H, T, n) with n = top_k − 1: the earlier regions each token reads
    besides its own, chosen by its region-prefix query against the region key means; ``valid`` is False
    for picks that do not exist (token i in region r has only r earlier regions).
    Non-causal: (regions (B, H, R, top_k), all-True valid): each region's top_k key regions by region means.
    """
    T = q.shape[-2]
    R = -(-T // S)
    dt = torch.promote_types(q.dtype, torch.float32)
    q, k = q.to(dt), k.to(dt)
    k_reg = region_means(k, S, prefix=False)  # (B, H, R, D)
    if not causal:
        scores = region_means(q, S, prefix=False) @ k_reg.transpose(-1, -2)  # (B, H, R, R)
        if shared:
            scores = scores.sum(1, keepdim=True)  # (B, 1, R, R): the affinity of the concatenated heads
        regions = scores.topk(min(top_k, R), dim=-1).indices.expand(q.shape[0], q.shape[1], -1, -1).contiguous()
        return regions, torch.ones_like(regions, dtype=torch.bool)
    own = torch.arange(T, device=q.device) // S  # (T,)
    earlier = torch.arange(R, device=q.device).view(1, R) < own.view(T, 1)  # (T, R)
    scores = region_means(q, S, prefix=True) @ k_reg.transpose(-1, -2)  # (B, H, T, R)
    if shared:
        scores = scores.sum(1, keepdim=True)  # (B, 1, T, R)
    n = max(0, min(top_k - 1, R))
    picked = scores.masked_fill(~earlier, float("-inf")).topk(n, dim=-1).indices  # (B, H or 1, T, n)
    valid = earlier.expand(*scores.shape).gather(-1, picked)  # a −inf pick (no such region) is not valid
    shape = (q.shape[0], q.shape[1], T, n)
    return picked.expand(shape).contiguous(), valid.expand(shape).contiguous()


def routing_mask(q: torch.Tensor, k: torch.Tensor, S: int, top_k: int, causal: bool, shared: bool = True) -> torch.Tensor:
    """q, k (B, H, T, D) → (B, H, T, T) bool, True where query i attends to key j after :func:`route`:
    causal, its own region's keys j ≤ i and every key of its valid picks; non-causal, every key of its
    region's top_k regions. The dense form of the routing (the reference and ``attention_weights``)."""
    B, H, T, _ = q.shape
    R = -(-T // S)
    region = torch.arange(T, device=q.device) // S  # (T,)
    regions, valid = route(q, k, S, top_k, causal, shared)
    keep = torch.zeros(B, H, regions.shape[2], R, dtype=torch.bool, device=q.device)
    keep.scatter_(-1, regions, valid)
    if not causal:
        return keep[..., region][..., region, :]  # rows by query region, columns by key region
    tril = torch.ones(T, T, dtype=torch.bool, device=q.device).tril()
    same = region.view(T, 1) == region.view(1, T)
    return keep[..., region] | (same & tril)


def mean_keys(T: int, S: int, top_k: int, causal: bool) -> float:
    """Mean number of keys a query attends to at the token level.

    causal (exact): token i in region r sees min(top_k − 1, r) full earlier regions plus its region's
    prefix, i − r·S + 1 tokens. Non-causal: min(top_k·S, T) — exact unless the short last region is kept.
    """
    if causal:
        return sum(min(top_k - 1, i // S) * S + i % S + 1 for i in range(T)) / T
    return float(min(top_k * S, T))


def routing_flops(T: int, S: int, H: int, D: int, causal: bool) -> float:
    """Per-token FLOPs of the region level: 2·H·D for the region means of q and k, plus the region scores —
    causal: token i (region r) scores its prefix query against r earlier region keys, 2·H·D·r;
    non-causal: R×R region scores per head, 2·H·D·R²/T per token. The top-k itself is comparisons."""
    R = -(-T // S)
    if causal:
        return 2 * H * D + 2 * H * D * sum(i // S for i in range(T)) / T
    return 2 * H * D + 2 * H * D * R * R / T


class BiLevelRoutingAttention(MaskedAttention):
    """Softmax attention restricted to the tokens of each query's top-k routed regions (BiFormer)."""

    pattern = "biformer"

    def __init__(self, ctx: MixerContext, options):
        super().__init__(ctx, AttentionOptions())
        self.region_size, self.top_k = options.region_size, options.top_k
        self.shared = options.routing == "shared"
        width = self.H * self.D
        # BiFormer's local-context enhancement: a depth-wise conv over V (one filter per channel), with bias
        self.lce = nn.Conv1d(width, width, options.lce, groups=width) if options.lce else None

    def attn_mask(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """(B, H, T, T) routing mask for projected q, k (B, H, T, D)."""
        return routing_mask(q, k, self.region_size, self.top_k, self.causal, self.shared)

    def enhance(self, y: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """y + LCE(v): v (B, H, T, D) as H·D channels over T, padded so token t sees t − K + 1 … t (causal)
        or the K tokens centred on it."""
        if self.lce is None:
            return y
        B, H, T, D = v.shape
        K = self.lce.kernel_size[0]
        pad = (K - 1, 0) if self.causal else ((K - 1) // 2, (K - 1) // 2)
        c = self.lce(F.pad(v.transpose(2, 3).reshape(B, H * D, T), pad))  # (B, H·D, T)
        return y + c.view(B, H, D, T).transpose(2, 3)

    def backend_for(self, device: torch.device) -> str:
        """As :class:`MaskedAttention`, except causal on the CPU: routing is per token there, a query block
        would read the union of its tokens' regions, and that measured no faster than the dense masked SDPA
        (benchmarks/sparse_attention.py), so ``auto`` keeps the dense reference."""
        path = super().backend_for(device)
        return "dense-mask" if path.endswith("-blocked") and self.causal else path

    def sparse_pays(self, T: int) -> bool:
        """Blocked when the routed keys are at most a quarter of the sequence (S = 64, top_k = 4: 0.86× dense
        at T = 512, 2.4× at 1024, fwd+bwd on one CPU core)."""
        return self.top_k * self.region_size <= T // 4

    def sparse_attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Non-causal: each region's top_k regions gathered per region, O(T·top_k·S)."""
        regions, _ = route(q, k, self.region_size, self.top_k, self.causal, self.shared)
        return _blocked.routed_attention(q, k, v, regions, self.region_size, self.scale)

    def flex_attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        regions, valid = route(q, k, self.region_size, self.top_k, self.causal, self.shared)
        return _flex.routed_attention(q, k, v, regions, valid, self.region_size, self.causal, self.scale)

    def flops_per_token(self, seq_len: int) -> int:
        """2·params + region routing + 2·keys·H·(D + D), keys the mean number of routed keys per query
        (≤ top_k·S) — the gathered-region cost, not the dense masked SDPA that computes it here."""
        T, S = seq_len, self.region_size
        keys = mean_keys(T, S, self.top_k, self.causal)
        params = sum(p.numel() for p in self.parameters())
        routing = routing_flops(T, S, self.H, self.D, self.causal)
        lce = 0 if self.lce is None else 2 * self.H * self.D * self.lce.kernel_size[0]
        return int(2 * params + routing + 2 * keys * self.H * 2 * self.D + lce)
