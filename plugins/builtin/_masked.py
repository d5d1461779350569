"""Softmax attention restricted by a sparsity pattern: the shared body of ``window`` and ``biformer``.

Both keep the built-in :class:`Attention`'s parameters and projections and only change which keys a query
may see. Each subclass gives the pattern twice: :meth:`attn_mask`, a dense boolean (…, T, T) mask (the
reference, and ``attention_weights``), and :meth:`sparse_attention`, the same attention at its real cost.
Which one runs (``backend_for``):

    auto, on CUDA     ``flex``: FlexAttention with a block mask, skipped blocks never computed
    auto, elsewhere   ``blocked``: :mod:`._blocked` (query blocks × their few key blocks through SDPA)
                      where :meth:`sparse_pays` at the task's length, else ``dense-mask``
    any other         ``dense-mask``: SDPA with the (…, T, T) mask — O(T²), the reference
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from deconstruct.model import pick_backend

from ._attention import Attention


class MaskedAttention(Attention):
    """Subclasses define :meth:`attn_mask` (True where a query may attend to a key) and
    :meth:`sparse_attention`; :meth:`flex_attention` where FlexAttention can express the pattern."""

    #: the name of the fast path in ``backend_for`` (e.g. ``window-blocked``)
    pattern = "masked"

    def __init__(self, ctx, options):
        super().__init__(ctx, options)
        self.max_seq_len = ctx.max_seq_len  # T of the task: what ``backend_for`` decides for

    def attn_mask(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """(T, T) or (B, H, T, T) boolean mask for queries q and keys k, both (B, H, T, D)."""
        raise NotImplementedError

    def sparse_attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """(B, H, T, D) attention under the pattern, at its sparse cost on the CPU."""
        raise NotImplementedError

    def flex_attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """(B, H, T, D) attention under the pattern through FlexAttention (a block mask)."""
        raise NotImplementedError

    def sparse_pays(self, T: int) -> bool:
        """Whether the blocked CPU path beats the dense one at length T (a rule from the measurements in
        benchmarks/sparse_attention.py: the keys a query block reads must be well below T)."""
        return True

    def backend_for(self, device: torch.device) -> str:
        if self.backend != "auto":
            pick_backend(self.backend, device)  # an unavailable request is still an error
            return "dense-mask"
        from ._flex import flex_runs_on

        if flex_runs_on(device):
            return f"{self.pattern}-flex"
        return f"{self.pattern}-blocked" if self.sparse_pays(self.max_seq_len) else "dense-mask"

    def dense_attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """The reference: SDPA over all T keys with the boolean mask, (B, H, T, D)."""
        return F.scaled_dot_product_attention(q, k, v, attn_mask=self.attn_mask(q, k), scale=self.scale)

    def forward(self, x: torch.Tensor, qk: torch.Tensor | None = None) -> torch.Tensor:
        # x: (B, T, d); queries/keys always come from x (qk_source "hidden")
        q, k, v = self._project(x, None)  # (B, H, T, D) each
        path = self.backend_for(q.device)
        if path.endswith("-blocked"):
            y = self.sparse_attention(q, k, v)
        elif path.endswith("-flex"):
            y = self.flex_attention(q, k, v)
        else:
            y = self.dense_attention(q, k, v)
        return self._output(self.enhance(y, v))  # y: (B, H, T, D)

    def enhance(self, y: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """What a subclass adds to the attention output y from the values v (both (B, H, T, D)): nothing."""
        return y

    @torch.no_grad()
    def attention_weights(self, x: torch.Tensor, qk: torch.Tensor | None = None) -> torch.Tensor:
        """(B, H, T, T): each head's softmax over the keys its mask allows (zero elsewhere), the O(T²) way."""
        q, k, _ = self._project(x, None)
        s = (q @ k.transpose(-1, -2)).float() * self.score_scale
        return s.masked_fill(~self.attn_mask(q, k), float("-inf")).softmax(-1)
