"""Training one configuration with one seed."""

from deconstruct.train._checkpoint import (
    CheckpointError,
    evaluate_checkpoint,
    has_checkpoint,
    read_checkpoint,
    run_directory,
)
from deconstruct.train._checkpoint import default_root as checkpoint_root
from deconstruct.train._loop import (
    Callback,
    TrainResult,
    autocast_for,
    build_task,
    evaluate,
    lr_at,
    make_optimizer,
    pick_device,
    total_steps,
    train,
)

__all__ = [
    "Callback",
    "CheckpointError",
    "checkpoint_root",
    "evaluate_checkpoint",
    "has_checkpoint",
    "read_checkpoint",
    "run_directory",
    "TrainResult",
    "autocast_for",
    "build_task",
    "evaluate",
    "lr_at",
    "make_optimizer",
    "pick_device",
    "total_steps",
    "train",
]
