"""What a task is: options that know the model's shape, and an object that serves batches."""

from __future__ import annotations

from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field


class TaskOptions(BaseModel):
    """Base of every task's options. Subclasses add their own fields; ``vocab_size`` and ``causal`` must be
    computable from the options alone (``spec check`` builds no data)."""

    model_config = ConfigDict(extra="forbid")

    seq_len: int = Field(128, ge=2, le=65536, description="tokens per training window T")

    @property
    def vocab_size(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def causal(self) -> bool:
        return True

    @property
    def token_inputs(self) -> bool:
        """False when the task feeds real vectors through its own read-in (see :meth:`io`)."""
        return True

    def io(self, d_model: int) -> tuple[Any, Any] | None:
        """``(read_in, read_out)`` modules replacing the token embedding and the vocabulary head, or None
        (token ids in, logits out). Built from the options alone, so ``spec check`` can count them."""
        return None


class Task(Protocol):
    """A source of (inputs, targets) batches. Targets equal to -100 are ignored by the loss.

    A task whose options define :meth:`TaskOptions.io` (non-token inputs) also defines
    ``loss(outputs, targets) -> scalar tensor`` (used in training instead of cross entropy) and
    ``evaluate_batch(outputs, inputs, targets) -> {name: (sum, count)}`` (must include ``val_loss``; every
    entry is reported as sum / count over the validation batches).
    """

    vocab_size: int
    seq_len: int
    causal: bool

    def get_batch(self, split: str, batch_size: int, generator: Any) -> tuple[Any, Any]:
        """(x, y), both (B, T) int64 CPU tensors (other shapes for a task with its own ``io``); ``split`` is
        "train" or "val"."""

    def metrics(self, val_loss: float) -> dict[str, float]:
        """Extra metrics derived from the validation loss (e.g. bits per byte)."""

    def fixed_tokens(self, length: int) -> Any:
        """One fixed real token sequence from the training data (for ``fixed_text_qk``)."""


# Optional members of a Task (read with getattr):
#   data_identity: dict      what it read (content hash, tokenizer); recorded with every run, and the report
#                            refuses to compare runs of the same task options that saw different data
#   eval_sets: tuple[str]    named evaluation sets; get_batch(name, …) serves their fixed windows and
#   eval_metrics(name, loss) -> {metric: value} scores them after training
