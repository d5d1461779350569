"""A rich progress bar on stderr that a training run reports into (a train Callback)."""

from __future__ import annotations

from typing import Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from deconstruct.cli._common import stderr


def make_progress(transient: bool = False) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TextColumn("val {task.fields[val]}"),
        TextColumn("{task.fields[tps]} tok/s"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=stderr,
        transient=transient,
        disable=not stderr.is_terminal and not _force(),
    )


def _force() -> bool:
    import os

    return os.environ.get("DECONSTRUCT_PROGRESS", "") == "1"


class ProgressCallback:
    """Feeds a rich Progress task from a training run (see ``deconstruct.train.Callback``)."""

    def __init__(self, progress: Progress, description: str, every: int = 1):
        self.progress, self.description, self.every = progress, description, every
        self.task: Any = None

    def on_start(self, info: dict[str, Any]) -> None:
        if self.task is not None:
            self.progress.remove_task(self.task)
        self.task = self.progress.add_task(self.description, total=info["steps"], loss="—", val="—", tps="—")

    def on_step(self, step: int, loss: float, tokens_per_second: float) -> None:
        if step % self.every == 0:
            self.progress.update(self.task, completed=step, loss=f"{loss:.3f}", tps=f"{tokens_per_second:,.0f}")

    def on_eval(self, step: int, metrics: dict[str, float]) -> None:
        self.progress.update(self.task, completed=step, val=f"{metrics['val_loss']:.3f}")
