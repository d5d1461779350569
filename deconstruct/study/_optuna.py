"""Optuna, as the runner uses it: storage with heartbeats, the retry callback, samplers, pruners, and the
shims over Optuna versions and its experimental-feature warnings. Optuna is imported on first use."""

from __future__ import annotations

import copy
import inspect
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from deconstruct.store import sqlite_path
from deconstruct.study._events import StudyError
from deconstruct.study._space import SearchSpace


@contextmanager
def quiet() -> Iterator[None]:
    """Silence Optuna's ExperimentalWarning (heartbeats, retries and some samplers are marked experimental)."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


def optuna_storage(url: str, *, heartbeat_interval: int | None = None, grace_period: int | None = None,
                   on_stale: Callable[[Any, Any], None] | None = None) -> Any:
    """An RDBStorage on ``url`` with heartbeats (so a killed worker's trial is detected and retried)."""
    import optuna

    kwargs: dict[str, Any] = {}
    if sqlite_path(url) is not None or url.startswith("sqlite"):
        from deconstruct.store._engine import BUSY_TIMEOUT_S

        kwargs["engine_kwargs"] = {"connect_args": {"timeout": BUSY_TIMEOUT_S}}
    if heartbeat_interval:
        kwargs["heartbeat_interval"] = int(heartbeat_interval)
        kwargs["grace_period"] = int(grace_period or 2 * heartbeat_interval)
        if on_stale is not None:  # renamed in Optuna 4.9 (failed_trial_callback is its deprecated alias)
            params = inspect.signature(optuna.storages.RDBStorage.__init__).parameters
            name = "heartbeat_stale_trial_callback" if "heartbeat_stale_trial_callback" in params else "failed_trial_callback"
            kwargs[name] = on_stale
    from sqlalchemy.exc import SQLAlchemyError

    from deconstruct.store import storage_error, watch_errors

    with quiet():
        try:
            storage = optuna.storages.RDBStorage(url, **kwargs)
        except SQLAlchemyError as exc:
            raise storage_error(url, exc) from None
    watch_errors(storage.engine, url)  # a database fault later is one line naming the storage
    return storage


def retry(study: Any, trial: Any) -> None:
    """Queue a WAITING copy of failed ``trial`` (same params, grid id; ``retry_history`` grows), through
    Optuna's RetryHeartbeatStaleTrialCallback (RetryFailedTrialCallback before 4.9). The copy does not
    inherit the dead worker's host, pid and failure reason."""
    import optuna

    base = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None) or optuna.storages.RetryFailedTrialCallback
    trial = copy.deepcopy(trial)
    trial.user_attrs = {k: v for k, v in trial.user_attrs.items() if k not in ("host", "pid", "fail_reason")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        base()(study, trial)


def retries(trial: Any) -> int:
    """How many times this trial's configuration was retried before."""
    return len(trial.system_attrs.get("retry_history", []))


def retried(trials: list[Any]) -> set[int]:
    """Numbers of the trials a retry was queued for."""
    return {n for t in trials for n in t.system_attrs.get("retry_history", [])}


def fail_stale_trials(study: Any) -> None:
    """Optuna's heartbeat check: fail the trials without heartbeat (calling the storage's ``on_stale``)."""
    import optuna

    with quiet():
        optuna.storages.fail_stale_trials(study)


def make_sampler(name: str, space: SearchSpace, target: int) -> Any:
    import optuna

    with quiet():
        if name == "grid":
            return optuna.samplers.GridSampler(space.grid_space(), seed=0)
        if name == "bruteforce":
            space.grid_space()  # a clear error for a range without step
            return optuna.samplers.BruteForceSampler()
        if name == "tpe":
            return optuna.samplers.TPESampler()
        if name == "random":
            return optuna.samplers.RandomSampler()
        if name == "nsga2":
            return optuna.samplers.NSGAIISampler(population_size=max(2, min(50, target // 2)))
    raise StudyError(f"unknown sampler {name!r}")


def make_pruner(name: str, first_eval: int, max_step: int) -> Any:
    """median: Optuna's MedianPruner after 3 trials; hyperband: resources from the first evaluation to the
    last step of the last seed; none."""
    import optuna

    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=max(1, first_eval), max_resource=max(max_step, first_eval + 1))
    return optuna.pruners.NopPruner()


def open_study(name: str, storage: Any, *, sampler: Any, pruner: Any, directions: Any, where: str) -> Any:
    """Create or load the Optuna study ``name``; a StudyError when it exists with other directions."""
    import optuna

    try:
        study = optuna.create_study(storage=storage, sampler=sampler, pruner=pruner, study_name=name,
                                    directions=directions, load_if_exists=True)
    except ValueError as exc:  # an Optuna study of this name with other directions
        raise StudyError(f"the Optuna study {name!r} in {where} does not match the spec: {exc}") from None
    found = [d.name.lower() for d in study.directions]
    if found != directions:
        raise StudyError(f"the Optuna study {name!r} in {where} optimizes {found}, the spec {directions}; use another name")
    return study


def optimize_once(study: Any, objective: Callable[[Any], Any], catch: tuple[type[Exception], ...]) -> None:
    """One trial of ``study`` (Optuna's experimental-feature and UserWarnings silenced)."""
    with quiet():
        warnings.filterwarnings("ignore", category=UserWarning, module=r"optuna(\.|$)")
        study.optimize(objective, n_trials=1, catch=catch)
