"""Crash recovery and the count that decides when a study is done.

A worker killed outright is found by Optuna's heartbeat (RDBStorage ``heartbeat_interval``/``grace_period``),
or at once when it ran on this host and its process is gone; its trial and runs are marked failed
(``worker died``) and the trial is queued again. Interrupted (Ctrl-C) trials are retried too, dead ones at
most :data:`MAX_DEATHS` times. :func:`study_status` counts the trials that count towards the target.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

from deconstruct.store import INTERRUPTED, STORAGE_FAULT, WORKER_DIED, StudyStore
from deconstruct.study import _optuna
from deconstruct.study._space import canonical

MAX_DEATHS = 3  #: a configuration whose worker died this many times is failed for good (OOM-killed?)
HOST = socket.gethostname()


def pid_alive(pid: int) -> bool:
    if os.name != "posix":
        return True  # cannot tell: leave it to the heartbeat
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def retryable(trial: Any) -> bool:
    """A failed Optuna trial whose configuration was never judged: interrupted, or its worker died (fewer
    than :data:`MAX_DEATHS` times)."""
    reason = trial.user_attrs.get("fail_reason")
    if reason is not None and reason.startswith(INTERRUPTED):
        return True
    if reason is None or reason.startswith(WORKER_DIED):
        return _optuna.retries(trial) < MAX_DEATHS
    return False


class Stop(str, Enum):
    """Why a study stopped."""

    done = "done"  # every configuration of a finite space has counted
    n_trials = "n_trials"  # the counted trials reached the target
    timeout = "timeout"
    stalled = "stalled"  # the sampler keeps proposing configurations that are done


@dataclass(frozen=True)
class StudyStatus:
    counted: int  # trials that count: completed, pruned, or failed for a reason of their own
    running: list[int]  # trial numbers running (here or in other workers)
    done_points: frozenset[Any]  # the configurations (canonical params) of the counted trials
    work: bool  # a new trial may start now
    finished: bool  # nothing is left to run or to wait for
    why: Stop  # the reason to give when finished


def study_status(trials: list[Any], target: int, points: set[Any] | None) -> StudyStatus:
    """Counted trials, running ones, done configurations of Optuna ``trials``; whether there is work or the
    study is done (``points``: the configurations of a finite space, else None)."""
    from optuna.trial import TrialState

    again = _optuna.retried(trials)
    counted, running, waiting, done_points, running_points = 0, [], [], set(), set()
    for t in trials:
        if t.state == TrialState.RUNNING:
            running.append(t.number)
            running_points.add(canonical(t.params))
        elif t.state == TrialState.WAITING:
            waiting.append(t)
        elif t.state in (TrialState.COMPLETE, TrialState.PRUNED) or (
            t.state == TrialState.FAIL and not retryable(t) and t.number not in again
        ):
            counted += 1
            done_points.add(canonical(t.params))
    why = Stop.done if points is not None and points <= done_points else Stop.n_trials
    work = True
    finished = False
    if counted >= target:
        work, finished = False, not running
    elif points is not None:
        remaining = points - done_points
        if not remaining:
            work, finished = False, not running
        elif remaining <= running_points and not any(canonical(w.params) in remaining for w in waiting):
            work = False
    elif counted + len(running) >= target:
        work = False
    if not work and not running:
        finished = True
    return StudyStatus(counted, running, frozenset(done_points), work, finished, why)


class Recovery:
    """Closes the rows of dead workers' trials in study ``name`` and queues their retries."""

    def __init__(self, name: str, rows: StudyStore, grace: int):
        self.name, self.rows, self.grace = name, rows, grace

    def on_stale(self, study: Any, trial: Any) -> None:
        """Optuna found ``trial`` without heartbeat and failed it: close its rows and queue a retry."""
        if study.study_name != self.name:
            return
        self.rows.fail_running(trial.number, f"{WORKER_DIED} (no heartbeat for {self.grace} s)")
        if _optuna.retries(trial) < MAX_DEATHS:
            _optuna.retry(study, trial)

    def sweep(self, study: Any) -> None:
        """Find dead workers (heartbeat, or a gone process on this host), close their rows, queue retries."""
        from optuna.trial import TrialState

        _optuna.fail_stale_trials(study)  # calls on_stale for each
        now = datetime.now()
        for t in study.get_trials(deepcopy=False):
            if t.state != TrialState.RUNNING:
                continue
            pid, host = t.user_attrs.get("pid"), t.user_attrs.get("host")
            if host == HOST and pid and pid != os.getpid() and not pid_alive(int(pid)):
                reason = f"{WORKER_DIED} (process {pid} on {host} is gone)"
            elif pid is None and t.datetime_start and (now - t.datetime_start).total_seconds() > 2 * self.grace:
                reason = f"{WORKER_DIED} (it never started its trial)"  # killed between ask and its first heartbeat
            else:
                continue
            try:
                study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
            except Exception:
                continue
            self.rows.fail_running(t.number, reason)
        # rows of trials Optuna has finished but whose worker never closed them
        states = {t.number: t.state for t in study.get_trials(deepcopy=False)}
        for row in self.rows.trials():
            if row.state == "running" and states.get(row.number, TrialState.RUNNING) != TrialState.RUNNING:
                self.rows.fail_running(row.number, f"{WORKER_DIED} (no heartbeat for {self.grace} s)")
        for run in self.rows.running_runs():
            if states.get(run.trial_number, TrialState.RUNNING) != TrialState.RUNNING:
                self.rows.fail_running(run.trial_number, WORKER_DIED)
        # retries of interrupted and dead trials (the heartbeat callback already queued some)
        trials = study.get_trials(deepcopy=False)
        again = _optuna.retried(trials)
        for t in trials:
            if t.state == TrialState.FAIL and t.number not in again and retryable(t):
                _optuna.retry(study, t)

    def retry_failures(self, study: Any, circumstances: str, mode: str, note: Any) -> None:
        """Queue a retry of each trial that failed for a reason of its configuration or environment (unknown
        mixer, plugin not loaded, out of memory, non-finite loss, an exception) when the code, the plugins or
        the environment changed since it failed (its ``circumstances`` user attribute, see
        :func:`deconstruct._code.circumstances`) or the store failed under it (``STORAGE_FAULT``), or always
        with ``mode="all"`` (``--retry-failed``). Called
        once per invocation by the command that started the study (``mode="none"``: a worker, which leaves it
        to that command, so a failure is retried once); ``note(text)`` says what is retried."""
        from optuna.trial import TrialState

        if mode == "none":
            return
        trials = study.get_trials(deepcopy=False)
        again = _optuna.retried(trials)
        for t in trials:
            if t.state != TrialState.FAIL or t.number in again or retryable(t):
                continue
            changed = t.user_attrs.get("circumstances") != circumstances
            store_failed = str(t.user_attrs.get("fail_reason") or "").startswith(STORAGE_FAULT)
            if not (changed or store_failed or mode == "all"):
                continue
            why = ("asked by --retry-failed" if mode == "all" else "the store failed under it" if store_failed
                   else "the code, plugins or environment changed")
            note(f"retrying trial {t.number} ({why}); it failed: {t.user_attrs.get('fail_reason')}")
            _optuna.retry(study, t)
