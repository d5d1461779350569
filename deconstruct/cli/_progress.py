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


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


class PlainProgress:
    """Progress as plain lines on stderr, for when it is not a terminal (a log file, a cluster job): a line
    when a run starts, then one every ``interval`` seconds ($DECONSTRUCT_PROGRESS_INTERVAL, default 30) and
    at the last step: step, loss, validation loss, tokens/s, elapsed time and ETA."""

    def __init__(self, description: str, interval: float | None = None):
        import os

        self.description = description
        self.interval = float(os.environ.get("DECONSTRUCT_PROGRESS_INTERVAL", 30)) if interval is None else interval
        self.total, self.val, self.start, self.last = 0, "—", 0.0, 0.0

    def _print(self, text: str) -> None:
        stderr.print(text, highlight=False, soft_wrap=True)

    def on_start(self, info: dict[str, Any]) -> None:
        import time

        self.total, self.val = int(info["steps"]), "—"
        self.start = self.last = time.monotonic()
        self._print(f"{self.description}: training {self.total} steps")

    def on_step(self, step: int, loss: float, tokens_per_second: float) -> None:
        import time

        now = time.monotonic()
        if now - self.last < self.interval and step < self.total:
            return
        self.last = now
        elapsed = now - self.start
        eta = elapsed / step * (self.total - step) if step else 0.0
        self._print(f"{self.description}: step {step}/{self.total} ({100 * step // max(self.total, 1)}%) "
                    f"loss {loss:.3f} val {self.val} {tokens_per_second:,.0f} tok/s, "
                    f"elapsed {_duration(elapsed)}, ETA {_duration(eta)}")

    def on_eval(self, step: int, metrics: dict[str, float]) -> None:
        self.val = f"{metrics['val_loss']:.3f}"


class ProgressCallback:
    """Feeds a rich Progress task from a training run (see ``deconstruct.train.Callback``); when the progress
    display is off (stderr is not a terminal), prints :class:`PlainProgress` lines instead."""

    def __init__(self, progress: Progress, description: str, every: int = 1):
        self.progress, self.description, self.every = progress, description, every
        self.task: Any = None
        self.plain = PlainProgress(description) if progress.disable else None

    def on_start(self, info: dict[str, Any]) -> None:
        if self.plain is not None:
            self.plain.on_start(info)
            return
        if self.task is not None:
            self.progress.remove_task(self.task)
        self.task = self.progress.add_task(self.description, total=info["steps"], loss="—", val="—", tps="—")

    def on_step(self, step: int, loss: float, tokens_per_second: float) -> None:
        if self.plain is not None:
            self.plain.on_step(step, loss, tokens_per_second)
        elif step % self.every == 0:
            self.progress.update(self.task, completed=step, loss=f"{loss:.3f}", tps=f"{tokens_per_second:,.0f}")

    def on_eval(self, step: int, metrics: dict[str, float]) -> None:
        if self.plain is not None:
            self.plain.on_eval(step, metrics)
        else:
            self.progress.update(self.task, completed=step, val=f"{metrics['val_loss']:.3f}")
