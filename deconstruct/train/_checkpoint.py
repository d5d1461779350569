"""Checkpoints: a run's whole training state in one directory, so a killed or preempted run resumes.

``train.checkpoint_every: N`` saves, every N steps and at the end, everything the next step depends on:

- the model's weights and buffers, the optimizer's state (AdamW moments, step counts);
- the schedule's position (the learning rate is a pure function of the step: :func:`lr_at`);
- the data sampler's RNG state (the ``torch.Generator`` the training windows are drawn from) and torch's
  global RNG state (dropout);
- the curve so far, training time so far, the last evaluation, and the spec (so ``deconstruct eval`` can
  rebuild the model from the directory alone).

A resumed run therefore takes exactly the steps the uninterrupted run would have taken, and on the CPU with a
fixed seed it ends with the same weights and the same validation loss. The file is written to a temporary
name and renamed (atomic on POSIX): a run killed while saving keeps its previous checkpoint.

A study keeps one directory per (configuration, seed) — ``ROOT/STUDY/CONFIGHASH-seedN`` — so the retry of a
trial whose worker died finds the checkpoint of the run it replaces. The directory is recorded with the run
in the store (``dc_run.checkpoint_dir``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from deconstruct._errors import DeconstructError

CHECKPOINT_FILE = "last.pt"
FORMAT = 1  #: bumped when the saved fields change incompatibly


class CheckpointError(DeconstructError):
    """A checkpoint that cannot be used: missing, unreadable, or of another configuration (exit 2)."""


def default_root(storage_url: str | None = None) -> Path:
    """Where checkpoints go: ``$DECONSTRUCT_CHECKPOINTS``; else a ``checkpoints`` folder beside a SQLite
    database; else ``./checkpoints`` (for a server database, point this at shared storage)."""
    if os.environ.get("DECONSTRUCT_CHECKPOINTS"):
        return Path(os.environ["DECONSTRUCT_CHECKPOINTS"]).expanduser().resolve()
    if storage_url:
        from deconstruct.store import sqlite_path

        db = sqlite_path(storage_url)
        if db is not None:
            return Path(db).expanduser().resolve().parent / "checkpoints"
    return Path("checkpoints").resolve()


def run_directory(root: str | Path, name: str, config_hash: str, seed: int) -> Path:
    """The directory of one (configuration, seed) run under ``root``."""
    return Path(root) / name / f"{config_hash}-seed{seed}"


class Checkpointer:
    """Saves and loads the training state of one run in ``directory`` (see the module docstring)."""

    def __init__(self, directory: str | Path, every: int | None):
        self.directory = Path(directory)
        self.every = every
        self.path = self.directory / CHECKPOINT_FILE
        self.saved_step: int | None = None

    def due(self, step: int) -> bool:
        return self.every is not None and step % self.every == 0 and step != self.saved_step

    def load(self, config_hash: str, seed: int) -> dict[str, Any] | None:
        """The saved state, or None when there is none yet. A checkpoint of another configuration or seed is
        refused (resuming from it would silently mix two runs)."""
        if not self.path.exists():
            return None
        state = read_checkpoint(self.directory)
        if state.get("config_hash") != config_hash or state.get("seed") != seed:
            raise CheckpointError(
                f"the checkpoint in {self.directory} is of configuration {state.get('config_hash')} seed "
                f"{state.get('seed')}, not {config_hash} seed {seed}; use another checkpoint directory or delete it"
            )
        self.saved_step = int(state["step"])
        return state

    def save(self, state: dict[str, Any]) -> None:
        import torch

        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{CHECKPOINT_FILE}.{os.getpid()}.tmp")
        torch.save({"format": FORMAT, **state}, tmp)
        os.replace(tmp, self.path)  # atomic: readers see the old or the new checkpoint, never half of one
        self.saved_step = int(state["step"])


def has_checkpoint(directory: str | Path) -> bool:
    return (Path(directory) / CHECKPOINT_FILE).exists()


def read_checkpoint(directory: str | Path) -> dict[str, Any]:
    """The state saved in ``directory`` (a :class:`CheckpointError` when there is none or it is unreadable)."""
    import torch

    path = Path(directory) / CHECKPOINT_FILE
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path} (train.checkpoint_every was not set, or the run saved none yet)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"cannot read the checkpoint {path}: {exc}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a deconstruct checkpoint of format {FORMAT}")
    return state


def evaluate_checkpoint(directory: str | Path, *, skip_relaxed: bool = False, device: str | None = None,
                        with_diagnostics: bool = True) -> dict[str, Any]:
    """Re-compute a run's evaluation from its checkpoint: validation loss and the task's metrics on the same
    fixed validation batches as training, the skip evaluations (relaxed blocks, or only their token mixers, removed) if asked, and the
    attention diagnostics. Returns ``{"step", "seed", "config_hash", "metrics", "diagnostics"}``."""
    import torch

    from deconstruct.model import build_model
    from deconstruct.spec import load_spec
    from deconstruct.train._diagnostics import collect_diagnostics
    from deconstruct.train._loop import (
        DIAGNOSTIC_SEQUENCES,
        autocast_for,
        build_task,
        evaluate,
        pick_device,
        skip_evaluations,
        validation_batches,
    )

    state = read_checkpoint(directory)
    resolved = load_spec(state["spec"])
    t = resolved.spec.train
    dev = pick_device(device or t.device)
    task = build_task(resolved)
    model = build_model(resolved, task.vocab_size, fixed_tokens=task.fixed_tokens(task.seq_len))
    model.load_state_dict(state["model"])
    model.to(dev)
    amp = autocast_for(dev, t.precision)
    val_batches = validation_batches(task, t, dev)
    evals = evaluate(model, val_batches, amp, accuracy=bool(getattr(task, "report_accuracy", False)), task=task)
    metrics = {"val_loss": evals["val_loss"], **task.metrics(evals["val_loss"]),
               **{k: v for k, v in evals.items() if k != "val_loss"}}
    if skip_relaxed:
        metrics.update(skip_evaluations(model, resolved, val_batches, amp, task, evals["val_loss"]))
    with torch.no_grad():
        diagnostics = collect_diagnostics(model, val_batches[0][0][:DIAGNOSTIC_SEQUENCES]) if with_diagnostics else []
    return {"step": int(state["step"]), "seed": int(state["seed"]), "config_hash": state["config_hash"],
            "directory": str(Path(directory).resolve()), "metrics": metrics, "diagnostics": diagnostics}
