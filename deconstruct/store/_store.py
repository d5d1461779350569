"""``Store``: deconstruct's tables in one SQLAlchemy database (the one Optuna uses too).

SQLite gets WAL mode, a busy timeout and foreign keys on every connection, so a study runner, its Optuna
heartbeat thread and a ``deconstruct report`` can use one file at the same time; PostgreSQL goes through the
same code. Every method opens a short session and returns plain dataclasses (never ORM objects), so callers
never hold a connection or a lock.

Writers: the study runner (:mod:`deconstruct.study`). Readers: ``study list/show``, reports.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from deconstruct._errors import StorageError
from deconstruct.metrics import canonical, columns
from deconstruct.store import _migrations
from deconstruct.store._engine import StudyNotFound, default_url, display_url, make_engine, sqlite_path
from deconstruct.store._schema import DiagnosticRow, MetricRow, RunRow, StudyRow, TrialRow

if TYPE_CHECKING:
    from deconstruct.store._study import StudyStore
    from deconstruct.train import TrainResult


#: reasons that make a failed trial worth retrying (its configuration was never really judged)
INTERRUPTED = "interrupted"
WORKER_DIED = "worker died"
#: a write to the store failed mid-trial (disk full, server gone): counted as failed in this invocation (a
#: broken store would fail every retry at once), retried by the next ``study run``
STORAGE_FAULT = "storage fault"

#: the per-run metrics that are columns of dc_run (anything else is read from ``metrics``)
RUN_COLUMNS = columns()


def is_retryable(error: str | None) -> bool:
    """A failure that says nothing about the configuration: Ctrl-C, or a worker that died."""
    return error is not None and error.startswith((INTERRUPTED, WORKER_DIED))


def utcnow() -> datetime:
    """Naive UTC: what every DateTime column holds."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


# -- what the store returns --------------------------------------------------------------------------------
@dataclass
class StudyInfo:
    """A study row, plus trial and run counts."""

    id: int
    name: str
    spec_text: str
    spec_hash: str
    spec: dict[str, Any]  # the spec as data, after --set (what a worker runs)
    objectives: list[str]
    directions: list[str]
    deconstruct_version: str
    torch_version: str
    created_at: datetime
    trials: dict[str, int] = field(default_factory=dict)  # state -> count (running, completed, failed, pruned)
    runs: int = 0

    def to_dict(self, with_spec: bool = False) -> dict[str, Any]:
        d = asdict(self)
        if not with_spec:
            d.pop("spec_text")
            d.pop("spec")
        return d


@dataclass
class TrialInfo:
    """One trial (``dc_trial``): ``values`` has one entry per objective when completed."""

    number: int
    state: str
    values: list[float] | None
    search_params: dict[str, Any]
    inactive_params: list[str]
    config_hash: str | None
    error: str | None
    reused: list[int]
    retry_of: int | None
    host: str | None
    pid: int | None
    started_at: datetime
    finished_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RunInfo:
    """One (trial, seed) run (``dc_run``), with the state of its trial."""

    id: int
    trial_number: int
    seed: int
    config_hash: str
    config: dict[str, Any]
    search_params: dict[str, Any]
    status: str  # running | completed | failed | pruned
    error: str | None
    val_loss: float | None
    metrics: dict[str, Any]  # bits_per_byte, skip_block_val_loss, train_seconds, … (final values)
    params: int | None
    flops_per_token: int | None
    tokens: int | None
    tokens_per_second: float | None
    peak_memory_bytes: int | None
    wall_seconds: float | None  # the whole run as the runner saw it: task, model, training, evaluation
    steps: int | None
    device: str | None
    versions: dict[str, Any]
    plugins: list[dict[str, Any]]
    host: str | None
    started_at: datetime
    finished_at: datetime | None
    heartbeat_at: datetime | None
    trial_state: str | None = None  # the dc_trial state (None for runs written without one)
    checkpoint_dir: str | None = None  # where its checkpoints are (None: train.checkpoint_every was not set)

    def value(self, name: str) -> float | None:
        """An objective or metric: a column of dc_run, else ``metrics[name]`` (aliases such as ``seconds``
        resolve through :mod:`deconstruct.metrics`)."""
        name = canonical(name)
        v = getattr(self, name) if name in RUN_COLUMNS else (self.metrics or {}).get(name)
        return float(v) if isinstance(v, (int, float)) else None  # text metrics (attention_backend): no value

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _study_info(row: StudyRow) -> StudyInfo:
    return StudyInfo(
        id=row.id, name=row.name, spec_text=row.spec_text, spec_hash=row.spec_hash, spec=row.spec_json or {},
        objectives=list(row.objectives or []), directions=list(row.directions or []),
        deconstruct_version=row.deconstruct_version, torch_version=row.torch_version, created_at=row.created_at,
    )


def _trial_info(row: TrialRow) -> TrialInfo:
    return TrialInfo(
        number=row.number, state=row.state, values=row.objective_values, search_params=row.search_params or {},
        inactive_params=list(row.inactive_params or []), config_hash=row.config_hash, error=row.error,
        reused=list(row.reused or []), retry_of=row.retry_of, host=row.host, pid=row.pid,
        started_at=row.started_at, finished_at=row.finished_at,
    )


def _run_info(row: RunRow, trial_state: str | None = None) -> RunInfo:
    return RunInfo(
        id=row.id, trial_number=row.trial_number, seed=row.seed, config_hash=row.config_hash,
        config=row.config or {}, search_params=row.search_params or {}, status=row.status, error=row.error,
        val_loss=row.val_loss, metrics=row.metrics or {}, params=row.params, flops_per_token=row.flops_per_token,
        tokens=row.tokens, tokens_per_second=row.tokens_per_second, peak_memory_bytes=row.peak_memory_bytes,
        wall_seconds=row.wall_seconds, steps=row.steps, device=row.device, versions=row.versions or {},
        plugins=list(row.plugins or []), host=row.host, started_at=row.started_at, finished_at=row.finished_at,
        heartbeat_at=row.heartbeat_at, trial_state=trial_state, checkpoint_dir=row.checkpoint_dir,
    )


def _finite(x: Any) -> Any:
    return None if isinstance(x, float) and not math.isfinite(x) else x


class Store:
    """deconstruct's tables in the database at ``url`` (default :func:`default_url`).

    ``create=False`` refuses to create a missing SQLite file (for commands that only read). Opening a store
    upgrades its tables to the current schema (additive migrations only).
    """

    def __init__(self, url: str | None = None, *, create: bool = True, readonly: bool = False):
        self.url = url or default_url()
        self.readonly = readonly
        if not readonly:
            self.engine = make_engine(self.url, create=create)
            self.version = _migrations.upgrade(self.engine)
            return
        # a reader: writes nothing (a read-only file system, a shared results file), upgrades nothing
        self.engine = make_engine(self.url, readonly=True)
        try:
            self.version = self._read_version()
        except StorageError:
            if sqlite_path(self.url) is None:
                raise
            # read-only folder without the WAL's shared-memory file: read the file as it is, without locks
            self.engine.dispose()
            self.engine = make_engine(self.url, readonly=True, immutable=True)
            self.version = self._read_version()
        if self.version < _migrations.HEAD:
            raise StorageError(f"storage {display_url(self.url)}: its tables are schema v{self.version}, older than "
                               f"this deconstruct's v{_migrations.HEAD}; run any `deconstruct study` command on it "
                               "with write access once to upgrade it")

    def _read_version(self) -> int:
        with self.engine.connect() as conn:
            version = _migrations.current_version(conn)
        if version > _migrations.HEAD:
            raise StorageError(f"storage {display_url(self.url)}: schema v{version} is newer than this deconstruct "
                               f"(v{_migrations.HEAD}); upgrade deconstruct to read it")
        return version

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    def close(self) -> None:
        self.engine.dispose()

    # -- studies ----------------------------------------------------------------------------------------
    def create_study(
        self,
        name: str,
        *,
        spec_text: str,
        spec_hash: str,
        spec_json: dict[str, Any],
        objectives: list[str],
        directions: list[str],
        deconstruct_version: str = "",
        torch_version: str = "",
    ) -> StudyInfo:
        """Insert the study row, or return the existing one of that name (whatever its spec)."""
        existing = self.get_study(name)
        if existing is not None:
            return existing
        row = StudyRow(
            name=name, spec_text=spec_text, spec_hash=spec_hash, spec_json=spec_json, objectives=list(objectives),
            directions=list(directions), deconstruct_version=deconstruct_version, torch_version=torch_version,
            created_at=utcnow(),
        )
        try:
            with self.session() as s, s.begin():
                s.add(row)
        except IntegrityError:  # another worker created it first
            pass
        found = self.get_study(name)
        assert found is not None
        return found

    def get_study(self, name: str) -> StudyInfo | None:
        with self.session() as s:
            row = s.scalars(select(StudyRow).where(StudyRow.name == name)).one_or_none()
            return None if row is None else _study_info(row)

    def study(self, name: str) -> StudyInfo:
        """The study named ``name``, with counts; :class:`StudyNotFound` (listing the known names) if none."""
        for info in self.studies():
            if info.name == name:
                return info
        known = ", ".join(s.name for s in self.studies()) or "none"
        raise StudyNotFound(f"no study named {name!r} in {display_url(self.url)}; studies there: {known}")

    def studies(self) -> list[StudyInfo]:
        """Every study, by name, with trial counts per state and the number of runs."""
        with self.session() as s:
            infos = [_study_info(r) for r in s.scalars(select(StudyRow).order_by(StudyRow.name))]
            counts: dict[int, dict[str, int]] = {}
            for study_id, state, n in s.execute(
                select(TrialRow.study_id, TrialRow.state, func.count()).group_by(TrialRow.study_id, TrialRow.state)
            ):
                counts.setdefault(study_id, {})[state] = n
            runs = dict(s.execute(select(RunRow.study_id, func.count()).group_by(RunRow.study_id)).all())
        for info in infos:
            info.trials = counts.get(info.id, {})
            info.runs = int(runs.get(info.id, 0))
        return infos

    def delete_study(self, name: str) -> bool:
        """Delete the study's rows from every ``dc_`` table (not Optuna's). False if there was none."""
        info = self.get_study(name)
        if info is None:
            return False
        with self.session() as s, s.begin():
            run_ids = select(RunRow.id).where(RunRow.study_id == info.id)
            s.execute(delete(MetricRow).where(MetricRow.run_id.in_(run_ids)))
            s.execute(delete(DiagnosticRow).where(DiagnosticRow.run_id.in_(run_ids)))
            s.execute(delete(RunRow).where(RunRow.study_id == info.id))
            s.execute(delete(TrialRow).where(TrialRow.study_id == info.id))
            s.execute(delete(StudyRow).where(StudyRow.id == info.id))
        return True

    def for_study(self, study_id: int) -> StudyStore:
        """A handle on the trials and runs of study ``study_id`` (what its runner writes)."""
        from deconstruct.store._study import StudyStore

        return StudyStore(self, study_id)

    # -- trials -----------------------------------------------------------------------------------------
    def trials(self, name: str) -> list[TrialInfo]:
        """Every trial of study ``name`` that started, by number."""
        return self.for_study(self._study_id(name)).trials()

    # -- runs -------------------------------------------------------------------------------------------
    def heartbeat(self, run_id: int) -> None:
        with self.session() as s, s.begin():
            s.execute(update(RunRow).where(RunRow.id == run_id).values(heartbeat_at=utcnow()))

    def add_metrics(self, run_id: int, rows: Iterable[tuple[int, str, float]], *, heartbeat: bool = True) -> int:
        """Add learning-curve points (step, name, value); points already stored and non-finite values are
        skipped. Returns how many were written."""
        rows = [(int(st), str(n), float(v)) for st, n, v in rows  # text metrics (attention_backend) are not curves
                if isinstance(v, (int, float)) and math.isfinite(float(v))]
        with self.session() as s, s.begin():
            have = {(int(st), str(n)) for st, n in s.execute(select(MetricRow.step, MetricRow.name).where(MetricRow.run_id == run_id))}
            new = []
            for st, n, v in rows:
                if (st, n) not in have:
                    have.add((st, n))
                    new.append(MetricRow(run_id=run_id, step=st, name=n, value=v))
            s.add_all(new)
            if heartbeat:
                s.execute(update(RunRow).where(RunRow.id == run_id).values(heartbeat_at=utcnow()))
        return len(new)

    def add_diagnostics(self, run_id: int, rows: Iterable[tuple[int, int, str, float]]) -> int:
        """Add attention indicators (layer, head, name, value) of a finished run; non-finite values skipped."""
        new = [DiagnosticRow(run_id=run_id, layer=int(layer), head=int(head), name=str(n), value=float(v))
               for layer, head, n, v in rows if v is not None and math.isfinite(float(v))]
        with self.session() as s, s.begin():
            s.add_all(new)
        return len(new)

    def diagnostics(self, name: str) -> dict[int, list[tuple[int, int, str, float]]]:
        """{run_id: [(layer, head, name, value)]} for every run of study ``name``."""
        study_id = self._study_id(name)
        out: dict[int, list[tuple[int, int, str, float]]] = {}
        with self.session() as s:
            q = (select(DiagnosticRow.run_id, DiagnosticRow.layer, DiagnosticRow.head, DiagnosticRow.name, DiagnosticRow.value)
                 .join(RunRow, RunRow.id == DiagnosticRow.run_id).where(RunRow.study_id == study_id)
                 .order_by(DiagnosticRow.run_id, DiagnosticRow.layer, DiagnosticRow.head))
            for run_id, layer, head, n, v in s.execute(q):
                out.setdefault(run_id, []).append((layer, head, n, v))
        return out

    def finish_run(
        self,
        run_id: int,
        status: str,
        *,
        error: str | None = None,
        result: TrainResult | None = None,
        wall_seconds: float | None = None,
    ) -> None:
        """Close a run: ``completed`` with its ``result``, or ``failed``/``pruned`` with ``error``. The
        result's metrics go to their dc_run columns, the others to the run's ``metrics`` JSON."""
        fields: dict[str, Any] = dict(status=status, error=error, finished_at=utcnow(), heartbeat_at=utcnow())
        if wall_seconds is not None:
            fields["wall_seconds"] = float(wall_seconds)
        if result is not None:
            values = {k: _finite(v) for k, v in result.values().items()}
            fields.update({k: v for k, v in values.items() if k in RUN_COLUMNS})
            fields["metrics"] = {k: v for k, v in values.items() if k not in RUN_COLUMNS}
            fields["device"] = result.device
        with self.session() as s, s.begin():
            s.execute(update(RunRow).where(RunRow.id == run_id).values(**fields))

    def runs(self, name: str, status: str | None = None) -> list[RunInfo]:
        """Every run of study ``name`` (optionally only those in ``status``), by trial then seed.

        Completed runs are unique per (config_hash, seed) — a configuration met again reuses its runs — except
        when two workers happen to train the same configuration at the same time.
        """
        study = self._study_id(name)
        with self.session() as s:
            states = dict(s.execute(select(TrialRow.number, TrialRow.state).where(TrialRow.study_id == study)).all())
            query = select(RunRow).where(RunRow.study_id == study)
            if status is not None:
                query = query.where(RunRow.status == status)
            rows = s.scalars(query.order_by(RunRow.trial_number, RunRow.seed, RunRow.id))
            return [_run_info(r, states.get(r.trial_number)) for r in rows]

    def curve(self, run_id: int, name: str = "val_loss") -> list[tuple[int, float]]:
        with self.session() as s:
            rows = s.execute(
                select(MetricRow.step, MetricRow.value)
                .where(MetricRow.run_id == run_id, MetricRow.name == name)
                .order_by(MetricRow.step)
            )
            return [(int(st), float(v)) for st, v in rows]

    def curves(self, name: str, metric: str | None = None) -> dict[int, dict[str, list[tuple[int, float]]]]:
        """Learning curves of every run of study ``name``: run id -> metric name -> [(step, value)] by step.
        ``metric`` keeps one name (e.g. ``val_loss``)."""
        study = self._study_id(name)
        query = (
            select(MetricRow.run_id, MetricRow.name, MetricRow.step, MetricRow.value)
            .join(RunRow, RunRow.id == MetricRow.run_id)
            .where(RunRow.study_id == study)
        )
        if metric is not None:
            query = query.where(MetricRow.name == metric)
        out: dict[int, dict[str, list[tuple[int, float]]]] = {}
        with self.session() as s:
            for run_id, n, st, v in s.execute(query.order_by(MetricRow.run_id, MetricRow.name, MetricRow.step)):
                out.setdefault(int(run_id), {}).setdefault(n, []).append((int(st), float(v)))
        return out

    def get_run(self, run_id: int) -> RunInfo:
        with self.session() as s:
            return _run_info(s.get_one(RunRow, run_id))

    def _study_id(self, name: str) -> int:
        info = self.get_study(name)
        if info is None:
            self.study(name)  # raises StudyNotFound with the known names
        assert info is not None
        return info.id
