"""In-context linear regression (Garg et al. 2022, "What Can Transformers Learn In-Context? A Case Study of
Simple Function Classes", arXiv 2208.01066).

Each sequence draws its own weights w ~ N(0, I_d) and n points x_i ~ N(0, I_d), y_i = wᵀx_i (no noise). The
model sees the tokens x_1, (y_1, 0, …, 0), x_2, (y_2, 0, …, 0), …, so T = 2·n_points; a linear read-in
(d → d_model) replaces the token embedding and a linear read-out (d_model → 1) the vocabulary head. The
prediction for y_i is read at the position of x_i, i.e. from the prefix (x_1, y_1, …, x_{i−1}, y_{i−1}, x_i);
the loss is the mean squared error over every such prefix (i = 1 … n).

Reported next to the model's MSE (``val_loss``), on the same validation prefixes:

- ``baseline_lstsq``   minimum-norm least squares on the i−1 preceding examples (0 for the first point);
  exact (≈ 0) once i−1 ≥ d, since the data are noise-free;
- ``baseline_zero``    always predicting 0: E[y²] = ‖w‖² ≈ d;
- ``val_loss_after_d`` the model's MSE on the prefixes with at least d examples (where least squares is
  exact; a good model approaches it there).

``seq_len`` is derived (2·n_points): leave it unset, or give exactly that value.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from deconstruct.metrics import Metric
from deconstruct.tasks._base import TaskOptions

#: what an icl_regression run measures beside val_loss (its ``register_tasks`` hook declares them)
METRICS = (
    Metric("baseline_lstsq", tasks=(), help="MSE of minimum-norm least squares on the preceding examples"),
    Metric("baseline_zero", tasks=(), help="MSE of always predicting 0"),
    Metric("val_loss_after_d", tasks=(), help="the model's MSE on prefixes with at least d examples"),
)


class ICLRegressionOptions(TaskOptions):
    seq_len: int = Field(0, ge=0, le=65536, description="derived: 2·n_points (leave unset, or give that value)")
    dims: int = Field(8, ge=1, le=4096, description="input dimension d")
    n_points: int = Field(16, ge=1, le=32768, description="(x, y) examples per sequence n; T = 2·n")

    @model_validator(mode="after")
    def _derive_seq_len(self) -> ICLRegressionOptions:
        T = 2 * self.n_points
        if self.seq_len not in (0, T):
            raise ValueError(f"seq_len ({self.seq_len}) is derived as 2·n_points = {T}; remove seq_len or set n_points")
        self.seq_len = T
        return self

    @property
    def vocab_size(self) -> int:
        return 0  # no tokens: the read-in/read-out of io() replace the embedding and the head

    @property
    def token_inputs(self) -> bool:
        return False

    def io(self, d_model: int) -> tuple[Any, Any]:
        from torch import nn

        return nn.Linear(self.dims, d_model), nn.Linear(d_model, 1)


class ICLRegression:
    """Serves (tokens (B, 2n, d), y (B, n)) batches; fresh random functions every batch."""

    causal = True
    vocab_size = 0

    def __init__(self, options: ICLRegressionOptions):
        self.dims, self.n_points, self.seq_len = options.dims, options.n_points, options.seq_len

    def get_batch(self, split: str, batch_size: int, generator: Any) -> tuple[Any, Any]:
        import torch

        B, n, d = batch_size, self.n_points, self.dims
        x = torch.randn(B, n, d, generator=generator)
        w = torch.randn(B, d, 1, generator=generator)
        y = (x @ w).squeeze(-1)  # (B, n)
        tokens = torch.zeros(B, n, 2, d)
        tokens[:, :, 0] = x  # x_i at even positions
        tokens[:, :, 1, 0] = y  # (y_i, 0, …, 0) at odd positions
        return tokens.view(B, 2 * n, d), y

    @staticmethod
    def predictions(outputs: Any) -> Any:
        """outputs (B, 2n, 1) → the predictions ŷ_i read at the x positions, (B, n) fp32."""
        return outputs[:, 0::2, 0].float()

    def loss(self, outputs: Any, y: Any) -> Any:
        import torch.nn.functional as F

        return F.mse_loss(self.predictions(outputs), y.float())

    def evaluate_batch(self, outputs: Any, tokens: Any, y: Any) -> dict[str, tuple[float, int]]:
        err = (self.predictions(outputs) - y.float()) ** 2  # (B, n)
        count = err.numel()
        out = {
            "val_loss": (err.sum().item(), count),
            "baseline_lstsq": (((lstsq_predictions(tokens[:, 0::2], y) - y) ** 2).sum().item(), count),
            "baseline_zero": ((y.float() ** 2).sum().item(), count),
        }
        late = err[:, self.dims :]  # prefixes with ≥ d examples
        if late.numel():
            out["val_loss_after_d"] = (late.sum().item(), late.numel())
        return out

    def metrics(self, val_loss: float) -> dict[str, float]:
        return {}

    def fixed_tokens(self, length: int) -> None:
        return None  # no token sequence: fixed_text_qk is rejected for this task at spec check


def lstsq_predictions(x: Any, y: Any) -> Any:
    """Minimum-norm least squares on each prefix: x (B, n, d), y (B, n) → ŷ (B, n) with ŷ_i = x_iᵀ ŵ_i,
    ŵ_i = pinv(X_{<i}) y_{<i} (ŵ_1 = 0). Computed in float64 (pinv works for under-determined prefixes on
    every device, unlike the CUDA lstsq driver)."""
    import torch

    x, y = x.double(), y.double()
    pred = torch.zeros_like(y)
    for i in range(1, x.shape[1]):
        w = torch.linalg.pinv(x[:, :i]) @ y[:, :i, None]  # (B, d, 1)
        pred[:, i] = (x[:, i : i + 1] @ w)[:, 0, 0]
    return pred.to(torch.float32)
