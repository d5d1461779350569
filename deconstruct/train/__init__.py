"""Training one configuration with one seed."""

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
