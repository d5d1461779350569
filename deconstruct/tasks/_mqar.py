"""Multi-query associative recall (MQAR; Arora et al. 2023, "Zoology", arXiv 2312.04927).

A context of n distinct key-value pairs k1 v1 … kn vn (keys from [1, V/2), values from [V/2, V)), then each
key is queried once more later in the sequence, at power-law gaps p(g) ∝ g^(a−1) (a = 0.01): the query key
is followed by its value, and the label at the query-key position is that value; every other position is
random filler and unlabelled (−100). The metric is accuracy on labelled positions. Attention solves it at
small width; attention-free mixers need width growing with n. Data is generated on the fly (unlimited); the
validation batches come from a fixed seed.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from deconstruct.tasks._base import TaskOptions


class MQAROptions(TaskOptions):
    seq_len: int = Field(64, ge=8, description="tokens per sequence T")
    vocab: int = Field(8192, ge=16, description="vocabulary V (keys: [1, V/2), values: [V/2, V))")
    num_pairs: int = Field(4, ge=1, description="key-value pairs n in the context")
    alpha: float = Field(0.01, gt=0, description="power-law exponent a of the query gaps")

    @model_validator(mode="after")
    def _fits(self) -> MQAROptions:
        if 4 * self.num_pairs > self.seq_len:
            raise ValueError(f"num_pairs ({self.num_pairs}) needs 4·n ≤ seq_len ({self.seq_len})")
        if self.vocab <= self.seq_len:
            raise ValueError(f"vocab ({self.vocab}) must exceed seq_len ({self.seq_len})")
        if self.vocab // 2 - 1 < self.num_pairs:
            raise ValueError(f"vocab ({self.vocab}) has fewer than num_pairs ({self.num_pairs}) distinct keys")
        return self

    @property
    def vocab_size(self) -> int:
        return self.vocab


class MQAR:
    causal = True

    def __init__(self, options: MQAROptions):
        import torch

        self.o = options
        self.vocab_size, self.seq_len = options.vocab, options.seq_len
        n_slots = (options.seq_len + 1 - 2 * options.num_pairs) // 2  # query slots of two tokens after the context
        gaps = torch.arange(1, n_slots + 1, dtype=torch.float64)
        self.slot_weights = gaps ** (options.alpha - 1)  # p(g) ∝ g^(a−1)

    def get_batch(self, split: str, batch_size: int, generator: Any) -> tuple[Any, Any]:
        import torch

        o, B, n = self.o, batch_size, self.o.num_pairs
        half = o.vocab // 2
        seq = torch.randint(0, o.vocab, (B, o.seq_len + 1), generator=generator)  # filler
        keys = torch.rand(B, half - 1, generator=generator).argsort(dim=1)[:, :n] + 1  # (B, n) distinct
        values = torch.randint(half, o.vocab, (B, n), generator=generator)
        rows = torch.arange(B)[:, None]
        seq[:, 0 : 2 * n : 2], seq[:, 1 : 2 * n : 2] = keys, values  # the context k1 v1 … kn vn
        slots = torch.multinomial(self.slot_weights.expand(B, -1), n, replacement=False, generator=generator)
        pos = 2 * n + 2 * slots  # (B, n) query-key positions
        order = torch.rand(B, n, generator=generator).argsort(dim=1)  # each key queried once, shuffled
        seq[rows, pos], seq[rows, pos + 1] = keys.gather(1, order), values.gather(1, order)
        x, y = seq[:, :-1], torch.full((B, o.seq_len), -100, dtype=torch.long)
        y[rows, pos] = seq[rows, pos + 1]
        return x, y

    def metrics(self, val_loss: float) -> dict[str, float]:
        return {}

    def fixed_tokens(self, length: int) -> Any:
        import torch

        return self.get_batch("train", 1, torch.Generator().manual_seed(0))[0][0, :length]
