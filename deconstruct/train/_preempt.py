"""Preemption: a signal that arrives while a run trains is honoured at the next step boundary.

A cluster job learns that it is about to be preempted (or hit its time limit) from a signal; submitit's
handler then checkpoints the job and requeues it. A step cut in half cannot be saved, so a job that trains
installs :func:`defer` in front of that handler: while a run is inside :func:`training`, the signal only
sets a flag; the training loop sees it at the end of the step (:func:`pending`), saves its checkpoint and
raises :class:`Preempted`; the job then calls the original handler (requeue). Outside a run the original
handler runs at once.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")

_STATE = {"training": 0, "requested": False}


class Preempted(KeyboardInterrupt):
    """The job is being preempted: the run saved its state (if it checkpoints) and stopped. A study records
    its trial as interrupted, to be retried — and resumed from the checkpoint — by the requeued job."""


@contextmanager
def training() -> Iterator[None]:
    """Marks the code of a training run: a deferred signal is honoured at its next step boundary."""
    _STATE["training"] += 1
    try:
        yield
    finally:
        _STATE["training"] -= 1


def preemptible(fn: Callable[P, R]) -> Callable[P, R]:
    """Runs ``fn`` (a training run) inside :func:`training`."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with training():
            return fn(*args, **kwargs)

    return wrapper


def pending() -> bool:
    return bool(_STATE["requested"])


def clear() -> None:
    _STATE["requested"] = False


def defer(original: Callable[[int, Any], Any]) -> Callable[[int, Any], Any]:
    """A signal handler that defers ``original`` to the next step boundary of a run (at once outside runs)."""

    def handler(signum: int, frame: Any) -> Any:
        if _STATE["training"] > 0:
            _STATE["requested"] = True
            return None
        return original(signum, frame)

    return handler
