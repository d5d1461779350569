"""The pointer head of the ``pointer`` task (Vinyals et al. 2015): attention scores as the output
distribution. Imported only when a model is built (the task options stay free of torch)."""

from __future__ import annotations

import torch
from torch import nn


class PointerHead(nn.Module):
    """h (B, T, d) → (B, T, n) logits over the first n positions, (W_q·h_t)·(W_k·h_j)/√d, j > t masked."""

    def __init__(self, d_model: int, n_items: int):
        super().__init__()
        self.n = n_items
        self.q = nn.Linear(d_model, d_model, bias=False)
        self.k = nn.Linear(d_model, d_model, bias=False)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        T, n = h.shape[1], self.n
        scores = self.q(h) @ self.k(h[:, :n]).transpose(-1, -2) / h.shape[-1] ** 0.5  # (B, T, n)
        future = torch.arange(n, device=h.device)[None, :] > torch.arange(T, device=h.device)[:, None]
        return scores.masked_fill(future, float("-inf"))
