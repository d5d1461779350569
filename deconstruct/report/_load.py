"""Reading a study out of the store into plain data. Nothing here trains; nothing writes data.

A report never needs the spec file, the model or Optuna objects in memory: every number comes from the run
rows (``dc_run``), their curves (``dc_metric``), their attention indicators (``dc_diagnostic``) and the
trial rows (``dc_trial``: which searched values each trial had and which configuration they resolved to — a
trial whose configuration was already trained has no runs of its own). Reading goes through
:class:`deconstruct.store.Store`. Optuna's own tables are read only for what only Optuna computes (parameter
importances, in :mod:`._importances`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from deconstruct import metrics
from deconstruct._errors import DeconstructError


@dataclass
class StudyData:
    name: str
    spec: dict[str, Any]  # the validated spec as data (dc_study.spec_json)
    objectives: list[str]
    directions: list[str]
    runs: list[Any]  # deconstruct.store.RunInfo, by trial then seed
    storage: str  # the URL it was read from
    trials: list[Any] = field(default_factory=list)  # deconstruct.store.TrialInfo, by number
    curves: dict[int, list[tuple[int, float]]] = field(default_factory=dict)  # run id -> [(step, value)]
    curve_metric: str = "val_loss"
    #: ``--metric``: the per-run value every table reports, by its canonical name (None: the first objective)
    metric: str | None = None
    #: run id -> [(layer, head, name, value)] from dc_diagnostic (head -1: a per-layer value)
    diagnostics: dict[int, list[tuple[int, int, str, float]]] = field(default_factory=dict)
    deconstruct_version: str = ""
    torch_version: str = ""

    @property
    def metric_name(self) -> str:
        """What the tables report: ``--metric``, else the first objective."""
        return self.metric or self.objectives[0]

    @property
    def metric_direction(self) -> str:
        return metric_direction(self.metric_name, self.objectives, self.directions)

    @property
    def display_storage(self) -> str:
        """The storage URL without its password (safe to print in a report)."""
        from deconstruct.store import display_url

        return display_url(self.storage)


def metric_direction(name: str, objectives: list[str], directions: list[str]) -> str:
    """The study's direction when ``name`` is one of its objectives (aliases resolved), else the metric's own
    (:func:`deconstruct.metrics.direction`)."""
    names = [metrics.canonical(o) for o in objectives]
    if metrics.canonical(name) in names:
        return directions[names.index(metrics.canonical(name))]
    return metrics.direction(name)


def available_metrics(runs: list[Any]) -> list[str]:
    """Every per-run value at least one run has: the metrics stored as dc_run columns, then the numeric keys
    of the runs' ``metrics``."""
    cols = [c for c in metrics.columns() if any(r.value(c) is not None for r in runs)]
    keys = sorted({k for r in runs for k, v in (r.metrics or {}).items() if isinstance(v, (int, float))})
    return cols + [k for k in keys if k not in cols]


def check_same_data(study: str, runs: list[Any]) -> None:
    """Runs of ``study`` with the same task options must have read the same data (``versions["data"]``: the
    content hash and tokenizer, or the corpus hash and Python version); a mix — a dataset prepared again in
    place, a study resumed under another Python — is refused. Runs recorded without it are not checked."""
    import json

    seen: dict[str, tuple[dict[str, Any], int]] = {}
    for r in runs:
        data = (r.versions or {}).get("data")
        if not data:
            continue
        key = json.dumps((r.config or {}).get("task", {}), sort_keys=True)
        first, first_id = seen.setdefault(key, (data, r.id))
        if data != first:
            raise DeconstructError(
                f"study {study!r} mixes runs that saw different data (run {first_id}: {_data_line(first)}; "
                f"run {r.id}: {_data_line(data)}); compare them in separate studies")


def _data_line(data: dict[str, Any]) -> str:
    extra = f", Python {data['python']}" if "python" in data else ""
    return f"{str(data.get('hash', '?'))[:12]} ({data.get('tokenizer', '?')}{extra})"


def _pick_curves(curves: dict[int, dict[str, list[tuple[int, float]]]], objective: str
                 ) -> tuple[str, dict[int, list[tuple[int, float]]]]:
    """The objective's curve when it was recorded per step, else ``val_loss``."""
    names = {n for per_run in curves.values() for n in per_run}
    metric = objective if objective in names else "val_loss"
    return metric, {run_id: per_run[metric] for run_id, per_run in curves.items() if metric in per_run}


def load_studies(names: list[str], url: str, metric: str | None = None) -> tuple[list[StudyData], Any]:
    """Studies ``names`` from the storage at ``url``, and an engine on it (for Optuna's tables). Unknown
    names raise :class:`deconstruct.store.StudyNotFound` before anything else is read; a ``metric`` no run
    of a study has raises :class:`DeconstructError` listing the metrics its runs have."""
    from deconstruct.store import Store

    metric = metrics.canonical(metric) if metric is not None else None
    store = Store(url, readonly=True)  # a report writes nothing (works on a read-only store)
    try:
        infos = [store.study(name) for name in names]
    except DeconstructError:
        store.engine.dispose()
        raise
    out = []
    for info in infos:
        objectives = list(info.objectives or ["val_loss"])
        runs = store.runs(info.name)
        try:
            check_same_data(info.name, runs)
        except DeconstructError:
            store.engine.dispose()
            raise
        if metric is not None and runs and not any(r.value(metric) is not None for r in runs):
            store.engine.dispose()
            raise DeconstructError(f"no run of study {info.name!r} has metric {metric!r}; its runs have: "
                                   f"{', '.join(available_metrics(runs)) or 'none'}")
        curve_metric, curves = _pick_curves(store.curves(info.name), metric or objectives[0])
        out.append(StudyData(
            name=info.name, spec=info.spec or {}, objectives=objectives, metric=metric,
            directions=list(info.directions or ["minimize"]), runs=runs,
            trials=store.trials(info.name), curves=curves, curve_metric=curve_metric,
            diagnostics=store.diagnostics(info.name), storage=url,
            deconstruct_version=info.deconstruct_version or "", torch_version=info.torch_version or "",
        ))
    return out, store.engine

