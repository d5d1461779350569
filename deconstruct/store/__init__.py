"""The store: deconstruct's ``dc_`` tables beside Optuna's, in one SQLAlchemy database.

``Store(url)`` opens (and creates or upgrades, by migrations) the tables; its read methods return plain
dataclasses for ``study show`` and reports:

- ``Store.studies()`` -> [StudyInfo] (name, objectives, directions, spec, versions, trial counts per state)
- ``Store.study(name)`` -> StudyInfo (``StudyNotFound`` lists the known names)
- ``Store.trials(name)`` -> [TrialInfo] (number, state, values, search_params, error, reused seeds, retry_of)
- ``Store.runs(name, status=None)`` -> [RunInfo] (one per (trial, seed): config, metrics, cost, versions)
- ``Store.curves(name, metric=None)`` -> {run_id: {metric: [(step, value)]}}

Writers (the study runner) take ``Store.for_study(study_id)``, a :class:`StudyStore` whose methods work on
that study's trial and run rows; run-level writes (``heartbeat``, ``add_metrics``, ``finish_run``) are on
``Store``. Which per-run metrics are ``dc_run`` columns comes from :mod:`deconstruct.metrics`.
"""

from deconstruct.store._engine import (
    DEFAULT_URL,
    StudyNotFound,
    default_url,
    display_url,
    make_engine,
    sqlite_path,
    storage_error,
    watch_errors,
)
from deconstruct.store._migrations import HEAD as SCHEMA_VERSION
from deconstruct.store._store import (
    INTERRUPTED,
    STORAGE_FAULT,
    WORKER_DIED,
    RunInfo,
    Store,
    StudyInfo,
    TrialInfo,
    is_retryable,
)
from deconstruct.store._study import StudyStore

__all__ = [
    "DEFAULT_URL",
    "INTERRUPTED",
    "SCHEMA_VERSION",
    "STORAGE_FAULT",
    "WORKER_DIED",
    "RunInfo",
    "Store",
    "StudyInfo",
    "StudyNotFound",
    "StudyStore",
    "TrialInfo",
    "default_url",
    "display_url",
    "is_retryable",
    "make_engine",
    "sqlite_path",
    "storage_error",
    "watch_errors",
]
