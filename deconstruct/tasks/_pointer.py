"""Pointer outputs (Vinyals et al. 2015, "Pointer Networks", arXiv 1506.03134): a task whose answer is a
*position in the input*, read out by a pointer head whose attention scores are the output distribution.

A sequence holds n distinct numbers a_1 … a_n from [0, V), a separator, then the answer so far (teacher
forcing): x = a_1 … a_n SEP b_1 … b_{n−1}, T = 2·n. At position n + t (t = 0 … n − 1) the target is the
input position (0-based) of the (t+1)-th answer element:

- ``sort``: b is a sorted ascending; the target is the position of the (t+1)-th smallest number;
- ``copy``: b is a itself; the target is position t.

The pointer head replaces the vocabulary head: logits_tj = (W_q·h_t)·(W_k·h_j)/√d over the n input
positions j (j > t masked, so the head stays causal), and the loss is cross entropy over positions. The
metric is accuracy over the n answer positions (chance 1/n). ``seq_len`` is derived (2·n_items).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from deconstruct.tasks._base import TaskOptions


class PointerOptions(TaskOptions):
    seq_len: int = Field(0, ge=0, le=65536, description="derived: 2·n_items (leave unset, or give that value)")
    n_items: int = Field(8, ge=2, le=32768, description="numbers per sequence n; T = 2·n")
    values: int = Field(64, ge=2, description="numbers are drawn, distinct, from [0, values)")
    mode: Literal["sort", "copy"] = Field("sort", description="sort: point at the next smallest | copy: at the next")

    @model_validator(mode="after")
    def _derive(self) -> PointerOptions:
        T = 2 * self.n_items
        if self.seq_len not in (0, T):
            raise ValueError(f"seq_len ({self.seq_len}) is derived as 2·n_items = {T}; remove seq_len or set n_items")
        if self.values < self.n_items:
            raise ValueError(f"values ({self.values}) must be at least n_items ({self.n_items}): the numbers are distinct")
        self.seq_len = T
        return self

    @property
    def vocab_size(self) -> int:
        return 0  # the pointer head's outputs are input positions, not a vocabulary

    def io(self, d_model: int) -> tuple[Any, Any]:
        from torch import nn

        from deconstruct.tasks._pointer_head import PointerHead

        return nn.Embedding(self.values + 1, d_model), PointerHead(d_model, self.n_items)


class Pointer:
    """Serves (x (B, 2n) tokens, y (B, 2n) target positions, −100 outside the answer)."""

    causal = True
    vocab_size = 0

    def __init__(self, options: PointerOptions):
        self.o = options
        self.seq_len = options.seq_len

    def get_batch(self, split: str, batch_size: int, generator: Any) -> tuple[Any, Any]:
        import torch

        B, n, V = batch_size, self.o.n_items, self.o.values
        a = torch.rand(B, V, generator=generator).argsort(dim=1)[:, :n]  # (B, n) distinct numbers
        order = a.argsort(dim=1) if self.o.mode == "sort" else torch.arange(n).expand(B, n)  # (B, n) positions
        answer = a.gather(1, order)  # (B, n)
        sep = torch.full((B, 1), V)
        x = torch.cat([a, sep, answer[:, : n - 1]], dim=1)  # (B, 2n)
        y = torch.full((B, 2 * n), -100, dtype=torch.long)
        y[:, n:] = order
        return x, y

    def metrics(self, val_loss: float) -> dict[str, float]:
        return {}

    def fixed_tokens(self, length: int) -> Any:
        import torch

        return self.get_batch("train", 1, torch.Generator().manual_seed(0))[0][0, :length]
