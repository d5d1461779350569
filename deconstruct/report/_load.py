"""Reading a study out of the store into plain data. Nothing here trains; nothing writes data.

A report never needs the spec file, the model or Optuna objects in memory: every number comes from the run
rows (``dc_run``), their curves (``dc_metric``), their attention indicators (``dc_diagnostic``) and the
trial rows (``dc_trial``: which searched values each trial had and which configuration they resolved to — a
trial whose configuration was already trained has no runs of its own). Reading goes through :class:`deconstruct.store.Store`; where that API is not available,
the ``dc_`` tables are read directly through the ORM classes of ``deconstruct.store._schema``. Optuna's own
tables are read only for what only Optuna computes (parameter importances, in ``_analysis``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from deconstruct._errors import DeconstructError

DEFAULT_STORAGE = "sqlite:///deconstruct.db"

#: objective names that are columns of dc_run (anything else is looked up in the run's ``metrics``)
RUN_COLUMNS = ("val_loss", "params", "flops_per_token", "tokens", "tokens_per_second", "peak_memory_bytes",
               "wall_seconds", "steps")
ALIASES = {"flops": "flops_per_token", "seconds": "train_seconds"}  # as the study runner reads objectives


class StudyNotFound(DeconstructError):
    """An unknown study name (or a missing database): the message lists the studies the storage holds."""


@dataclass
class Run:
    """One (trial, seed) run of ``dc_run`` (the fields a report uses; ``deconstruct.store.RunInfo`` has them)."""

    id: int
    trial_number: int
    seed: int
    config_hash: str
    config: dict[str, Any]
    search_params: dict[str, Any]
    status: str
    error: str | None
    val_loss: float | None
    metrics: dict[str, Any]
    params: int | None
    flops_per_token: int | None
    tokens: int | None
    tokens_per_second: float | None
    peak_memory_bytes: int | None
    wall_seconds: float | None
    steps: int | None = None
    device: str | None = None

    def value(self, name: str) -> float | None:
        """An objective or metric: a dc_run column, else ``metrics[name]`` (``seconds``: training time)."""
        name = ALIASES.get(name, name)
        v = getattr(self, name) if name in RUN_COLUMNS else (self.metrics or {}).get(name)
        return None if v is None else float(v)


@dataclass
class Trial:
    """One trial of ``dc_trial`` (``deconstruct.store.TrialInfo`` has these fields)."""

    number: int
    state: str
    values: list[float] | None
    search_params: dict[str, Any]
    config_hash: str | None
    error: str | None
    reused: list[int] = field(default_factory=list)
    retry_of: int | None = None


@dataclass
class StudyData:
    name: str
    spec: dict[str, Any]  # the validated spec as data (dc_study.spec_json)
    objectives: list[str]
    directions: list[str]
    runs: list[Any]  # Run / RunInfo, by trial then seed
    trials: list[Any] = field(default_factory=list)  # Trial / TrialInfo, by number ([] for stores without dc_trial)
    curves: dict[int, list[tuple[int, float]]] = field(default_factory=dict)  # run id -> [(step, value)]
    curve_metric: str = "val_loss"
    #: run id -> [(layer, head, name, value)] from dc_diagnostic (head -1: a per-layer value)
    diagnostics: dict[int, list[tuple[int, int, str, float]]] = field(default_factory=dict)
    storage: str = DEFAULT_STORAGE
    deconstruct_version: str = ""
    torch_version: str = ""


def storage_url(storage: str | None) -> str:
    """``--storage``, else ``$DECONSTRUCT_STORAGE``, else ``sqlite:///deconstruct.db``."""
    return storage or os.environ.get("DECONSTRUCT_STORAGE") or DEFAULT_STORAGE


def display_url(url: str) -> str:
    """The URL without its password (safe to print in a report)."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


def _pick_curves(curves: dict[int, dict[str, list[tuple[int, float]]]], objective: str
                 ) -> tuple[str, dict[int, list[tuple[int, float]]]]:
    """The objective's curve when it was recorded per step, else ``val_loss``."""
    names = {n for per_run in curves.values() for n in per_run}
    metric = objective if objective in names else "val_loss"
    return metric, {run_id: per_run[metric] for run_id, per_run in curves.items() if metric in per_run}


def load_studies(names: list[str], url: str) -> tuple[list[StudyData], Any]:
    """Studies ``names`` from the storage at ``url``, and an engine on it (for Optuna's tables). Unknown
    names raise :class:`StudyNotFound` before anything else is read."""
    try:
        from deconstruct.store import Store
    except ImportError:  # a store package without the read API: read the tables directly
        return _load_with_orm(names, url)
    from deconstruct.store import StudyNotFound as StoreStudyNotFound

    try:
        store = Store(url, create=False)
        infos = [store.study(name) for name in names]
    except StoreStudyNotFound as exc:
        raise StudyNotFound(str(exc)) from None
    out = []
    for info in infos:
        metric, curves = _pick_curves(store.curves(info.name), (info.objectives or ["val_loss"])[0])
        read_diagnostics = getattr(store, "diagnostics", None)  # a store from before dc_diagnostic: none
        out.append(StudyData(
            name=info.name, spec=info.spec or {}, objectives=list(info.objectives or ["val_loss"]),
            directions=list(info.directions or ["minimize"]), runs=store.runs(info.name),
            trials=store.trials(info.name), curves=curves, curve_metric=metric,
            diagnostics=read_diagnostics(info.name) if read_diagnostics is not None else {}, storage=url,
            deconstruct_version=info.deconstruct_version or "", torch_version=info.torch_version or "",
        ))
    return out, store.engine


def _load_with_orm(names: list[str], url: str) -> tuple[list[StudyData], Any]:
    from sqlalchemy import create_engine, inspect, select
    from sqlalchemy.engine import make_url
    from sqlalchemy.orm import Session

    from deconstruct.store._schema import DiagnosticRow, MetricRow, RunRow, StudyRow

    try:
        parsed = make_url(url)
    except Exception as exc:
        raise DeconstructError(f"invalid storage URL {url!r}: {exc}") from None
    db = parsed.database if parsed.get_backend_name() == "sqlite" else None
    if db and db != ":memory:" and not db.startswith("file:") and not os.path.exists(db):
        raise StudyNotFound(f"no database at {db} (storage {display_url(url)}); run `deconstruct study run` first")
    engine = create_engine(url)
    known = []
    has_diagnostics = inspect(engine).has_table(DiagnosticRow.__tablename__)
    if inspect(engine).has_table(StudyRow.__tablename__):
        with Session(engine) as s:
            known = list(s.scalars(select(StudyRow.name).order_by(StudyRow.name)))
    for name in names:
        if name not in known:
            listed = ", ".join(known) or "none"
            raise StudyNotFound(f"no study named {name!r} in {display_url(url)}; studies there: {listed}")
    out = []
    with Session(engine) as s:
        for name in names:
            row = s.scalars(select(StudyRow).where(StudyRow.name == name)).one()
            runs = [
                Run(id=r.id, trial_number=r.trial_number, seed=r.seed, config_hash=r.config_hash,
                    config=r.config or {}, search_params=r.search_params or {}, status=r.status, error=r.error,
                    val_loss=r.val_loss, metrics=r.metrics or {}, params=r.params,
                    flops_per_token=r.flops_per_token, tokens=r.tokens, tokens_per_second=r.tokens_per_second,
                    peak_memory_bytes=r.peak_memory_bytes, wall_seconds=r.wall_seconds, device=r.device)
                for r in s.scalars(select(RunRow).where(RunRow.study_id == row.id)
                                   .order_by(RunRow.trial_number, RunRow.seed, RunRow.id))
            ]
            curves: dict[int, dict[str, list[tuple[int, float]]]] = {}
            query = (select(MetricRow.run_id, MetricRow.name, MetricRow.step, MetricRow.value).join(RunRow)
                     .where(RunRow.study_id == row.id).order_by(MetricRow.run_id, MetricRow.name, MetricRow.step))
            for run_id, metric_name, step, value in s.execute(query):
                curves.setdefault(run_id, {}).setdefault(metric_name, []).append((int(step), float(value)))
            diagnostics: dict[int, list[tuple[int, int, str, float]]] = {}
            if has_diagnostics:
                query = (select(DiagnosticRow.run_id, DiagnosticRow.layer, DiagnosticRow.head, DiagnosticRow.name,
                                DiagnosticRow.value).join(RunRow).where(RunRow.study_id == row.id)
                         .order_by(DiagnosticRow.run_id, DiagnosticRow.layer, DiagnosticRow.head))
                for run_id, layer, head, diag_name, value in s.execute(query):
                    diagnostics.setdefault(int(run_id), []).append((int(layer), int(head), diag_name, float(value)))
            objectives = list(row.objectives or ["val_loss"])
            metric, picked = _pick_curves(curves, objectives[0])
            out.append(StudyData(
                name=row.name, spec=row.spec_json or {}, objectives=objectives,
                directions=list(row.directions or ["minimize"] * len(objectives)), runs=runs, trials=[],
                curves=picked, curve_metric=metric, diagnostics=diagnostics, storage=url,
                deconstruct_version=row.deconstruct_version or "", torch_version=row.torch_version or "",
            ))
    return out, engine
