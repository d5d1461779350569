"""nn.Module of the ``biformer`` mixer (see ``biformer.py``; Zhu et al. 2023, BiFormer, arXiv 2303.08125).

Standard multi-head attention (the ``attention`` mixer's ``qkv`` / ``out_proj``, same parameters) whose
keys are restricted by a per-(batch, head) routing mask. The routing runs under ``no_grad`` (top-k is not
differentiable) in float32 on the projected (and, with rope, rotated) queries and keys; the token level
calls ``torch.nn.functional.scaled_dot_product_attention`` with a boolean ``attn_mask`` of shape
(B, H, T, T) built from it. That is a dense O(T²) reference for the *result*: the gathered-key
implementation the paper uses costs O(T·top_k·S) at the token level, and ``flops_per_token`` counts that.
The causal per-token region queries (prefix means) are also computed densely here, a (T, T) averaging
matrix per layout, cached per (T, device).
"""

from __future__ import annotations

import torch

from deconstruct.model import MixerContext

from ._masked import MaskedAttention
from .attention import AttentionOptions


def region_layout(T: int, S: int, causal: bool, device=None) -> dict[str, torch.Tensor]:
    """The sequence's region structure for T tokens in regions of S (R = ⌈T/S⌉, the last may be shorter):

    region (T,) long: region of each token; avg (R, T): row r averages region r's tokens;
    prefix (T, T) (causal only): row i averages the tokens of i's region up to and including i;
    earlier (T, R) bool (causal only): region s lies strictly before token i's region;
    own (T, R) bool: token i lies in region s; visible (T, T) bool: j ≤ i causal, all True otherwise.
    """
    R = -(-T // S)
    region = torch.arange(T, device=device) // S  # (T,)
    own = region.unsqueeze(1) == torch.arange(R, device=device).unsqueeze(0)  # (T, R)
    avg = own.T.float() / own.sum(0).unsqueeze(1).float()  # (R, T)
    out = {"region": region, "avg": avg, "own": own}
    if causal:
        tril = torch.ones(T, T, dtype=torch.bool, device=device).tril()
        same = region.unsqueeze(1) == region.unsqueeze(0)  # (T, T)
        prefix = (same & tril).float()
        out["prefix"] = prefix / prefix.sum(-1, keepdim=True)  # (T, T)
        out["earlier"] = torch.arange(R, device=device).unsqueeze(0) < region.unsqueeze(1)  # (T, R)
        out["visible"] = tril
    else:
        out["visible"] = torch.ones(T, T, dtype=torch.bool, device=device)
    return out


@torch.no_grad()
def routing_mask(q: torch.Tensor, k: torch.Tensor, S: int, top_k: int, causal: bool,
                 layout: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
    """q, k (B, H, T, D) → (B, H, T, T) bool, True where query i attends to key j after routing.

    causal: token i's region query is the mean of its region's queries up to i; it scores the earlier
    regions' key means, keeps its own region plus the top_k − 1 best earlier ones, and j ≤ i inside them.
    Non-causal: region query / key = whole-region means; each region keeps its top_k best key regions.
    """
    T = q.shape[-2]
    lay = layout or region_layout(T, S, causal, q.device)
    region, avg, own = lay["region"], lay["avg"], lay["own"]
    R = avg.shape[0]
    q, k = q.float(), k.float()
    k_reg = avg @ k  # (B, H, R, D): region keys
    if causal:
        q_tok = lay["prefix"] @ q  # (B, H, T, D): each token's region-prefix query
        scores = q_tok @ k_reg.transpose(-1, -2)  # (B, H, T, R)
        earlier = lay["earlier"]
        n = min(top_k - 1, R)
        keep = own.expand_as(scores).clone()  # (B, H, T, R): the own region, always
        if n > 0:
            idx = scores.masked_fill(~earlier, float("-inf")).topk(n, dim=-1).indices  # (B, H, T, n)
            picked = torch.zeros_like(keep).scatter_(-1, idx, True)
            keep |= picked & earlier  # fewer than n earlier regions: the -inf picks are dropped here
        mask = keep[..., region]  # (B, H, T, T): key j kept iff its region is
    else:
        q_reg = avg @ q  # (B, H, R, D)
        scores = q_reg @ k_reg.transpose(-1, -2)  # (B, H, R, R)
        idx = scores.topk(min(top_k, R), dim=-1).indices  # (B, H, R, top_k)
        keep = torch.zeros(scores.shape, dtype=torch.bool, device=q.device).scatter_(-1, idx, True)
        mask = keep[..., region][..., region, :]  # (B, H, T, T): rows by query region, columns by key region
    return mask & lay["visible"]


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

    def __init__(self, ctx: MixerContext, options):
        super().__init__(ctx, AttentionOptions())
        self.region_size, self.top_k = options.region_size, options.top_k
        self._layouts: dict[tuple[int, str], dict[str, torch.Tensor]] = {}  # (T, device) → layout; not state

    def layout(self, T: int, device: torch.device) -> dict[str, torch.Tensor]:
        key = (T, str(device))
        lay = self._layouts.get(key)
        if lay is None:
            if len(self._layouts) >= 8:
                self._layouts.clear()
            lay = self._layouts[key] = region_layout(T, self.region_size, self.causal, device)
        return lay

    def attn_mask(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """(B, H, T, T) routing mask for projected q, k (B, H, T, D)."""
        lay = self.layout(q.shape[-2], q.device)
        return routing_mask(q, k, self.region_size, self.top_k, self.causal, lay)

    def flops_per_token(self, seq_len: int) -> int:
        """2·params + region routing + 2·keys·H·(D + D), keys the mean number of routed keys per query
        (≤ top_k·S) — the gathered-region cost, not the dense masked SDPA that computes it here."""
        T, S = seq_len, self.region_size
        keys = mean_keys(T, S, self.top_k, self.causal)
        params = sum(p.numel() for p in self.parameters())
        routing = routing_flops(T, S, self.H, self.D, self.causal)
        return int(2 * params + routing + 2 * keys * self.H * 2 * self.D)
