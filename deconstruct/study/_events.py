"""What a study run tells its caller: progress events, each trial's outcome, the final summary, and the
errors that stop a study or fail one trial."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from deconstruct._errors import DeconstructError


class StudyError(DeconstructError):
    """A study that cannot run as asked (a changed spec, an unknown objective, …): one line, exit 2."""


class TrialFailed(Exception):
    """Raised out of the objective so that Optuna records FAIL and the study goes on."""


def one_line(exc: BaseException) -> str:
    """An exception as the one line a trial records."""
    if isinstance(exc, (DeconstructError, TrialFailed)):
        return str(exc)
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


class StudyEvents:
    """Hooks the runner calls (the CLI's progress display implements them); subclass and override what you
    need, every method is optional. Raising stops the study."""

    def on_study_start(self, info: dict[str, Any]) -> None: ...
    def on_trial_start(self, number: int, params: dict[str, Any], inactive: list[str]) -> None: ...
    def on_run_start(self, number: int, seed: int, info: dict[str, Any]) -> None: ...
    def on_step(self, step: int, loss: float, tokens_per_second: float) -> None: ...
    def on_eval(self, step: int, metrics: dict[str, float]) -> None: ...
    def on_run_end(self, number: int, seed: int, status: str, error: str | None) -> None: ...
    def on_trial_end(self, outcome: TrialOutcome) -> None: ...
    def on_wait(self, running: list[int]) -> None: ...
    def on_note(self, message: str) -> None: ...


@dataclass
class TrialOutcome:
    number: int
    state: str  # completed | failed | pruned
    values: list[float] | None
    params: dict[str, Any]
    error: str | None
    reused: list[int]  # seeds whose stored run was reused
    done: int  # counted trials so far (including this one)
    total: int  # the target
    best: list[float] | None  # best values so far (single objective) — None when multi-objective


@dataclass
class StudySummary:
    name: str
    storage: str
    objectives: list[str]
    directions: list[str]
    target: int
    counted: int
    states: dict[str, int]
    stop_reason: str  # done | n_trials | timeout | stalled
    best: dict[str, Any] | None = None  # single objective: {number, values, params, config_hash}
    pareto: list[dict[str, Any]] = field(default_factory=list)  # multi-objective: the non-dominated trials
    trained: int = 0  # runs trained by this invocation
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
