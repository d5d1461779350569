"""What a resolved spec costs, counted without memory or initialisation: the model is built on PyTorch's
``meta`` device (shapes only), so counting a 100M-parameter model takes a fraction of a second.

Training compute is 3 × the analytic forward FLOPs per token × tokens (backward ≈ 2 × forward), the
convention of Kaplan et al. 2020 and of ``train.flops``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from deconstruct.metrics import TRAIN_FLOPS_FACTOR


@dataclass(frozen=True)
class ModelCost:
    params: int  # unique parameters (a tied head counts once)
    flops_per_token: int  # analytic forward FLOPs per token at the task's sequence length

    @property
    def train_flops_per_token(self) -> int:
        return TRAIN_FLOPS_FACTOR * self.flops_per_token


_CACHE: dict[str, ModelCost] = {}


def model_cost(resolved: Any) -> ModelCost:
    """Parameters and forward FLOPs/token of the model ``resolved`` describes (cached by config hash)."""
    key = resolved.config_hash()
    if key not in _CACHE:
        import torch

        from deconstruct.model._transformer import build_model
        from deconstruct.tasks import TaskOptions

        with torch.device("meta"):
            model = build_model(resolved)
        seq_len = int(cast(TaskOptions, resolved.task_options).seq_len)
        _CACHE[key] = ModelCost(model.num_params(), model.flops_per_token(seq_len))
    return _CACHE[key]
