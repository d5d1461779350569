"""``StudyStore``: the rows of one study, as its runner writes and reads them.

``Store.for_study(study_id)`` returns one; every method works on that study's trials and runs, so the study
id is given once. Run-level calls (heartbeats, metrics, ``finish_run``) stay on :class:`Store`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select, update

from deconstruct.store._schema import RunRow, TrialRow
from deconstruct.store._store import RunInfo, Store, TrialInfo, _run_info, _trial_info, is_retryable, utcnow


class StudyStore:
    """The trials and runs of study ``study_id`` in ``store``."""

    def __init__(self, store: Store, study_id: int):
        self.store, self.id = store, study_id

    # -- trials -----------------------------------------------------------------------------------------
    def start_trial(
        self,
        number: int,
        *,
        search_params: dict[str, Any],
        inactive_params: list[str] = (),  # type: ignore[assignment]
        retry_of: int | None = None,
        host: str | None = None,
        pid: int | None = None,
    ) -> None:
        """Record trial ``number`` as running (re-entering a trial number overwrites its row)."""
        fields = dict(
            state="running", objective_values=None, search_params=search_params, inactive_params=list(inactive_params),
            config_hash=None, error=None, reused=[], retry_of=retry_of, host=host, pid=pid, started_at=utcnow(),
            finished_at=None,
        )
        with self.store.session() as s, s.begin():
            row = s.scalars(select(TrialRow).where(TrialRow.study_id == self.id, TrialRow.number == number)).one_or_none()
            if row is None:
                s.add(TrialRow(study_id=self.id, number=number, **fields))
            else:
                for k, v in fields.items():
                    setattr(row, k, v)

    def update_trial(self, number: int, **fields: Any) -> None:
        """Set columns of a trial row (``values`` is accepted for ``objective_values``)."""
        if "values" in fields:
            fields["objective_values"] = fields.pop("values")
        with self.store.session() as s, s.begin():
            s.execute(update(TrialRow).where(TrialRow.study_id == self.id, TrialRow.number == number).values(**fields))

    def finish_trial(
        self,
        number: int,
        state: str,
        *,
        values: list[float] | None = None,
        error: str | None = None,
        reused: list[int] | None = None,
    ) -> None:
        fields: dict[str, Any] = dict(state=state, objective_values=values, error=error, finished_at=utcnow())
        if reused is not None:
            fields["reused"] = list(reused)
        self.update_trial(number, **fields)

    def trials(self) -> list[TrialInfo]:
        with self.store.session() as s:
            rows = s.scalars(select(TrialRow).where(TrialRow.study_id == self.id).order_by(TrialRow.number))
            return [_trial_info(r) for r in rows]

    def failed_config(self, config_hash: str, exclude: Iterable[int] = ()) -> TrialInfo | None:
        """The first trial of this configuration that failed for a reason of its own (not an interrupt), other
        than the trials in ``exclude`` (failures already being retried)."""
        exclude = set(exclude)
        with self.store.session() as s:
            rows = s.scalars(
                select(TrialRow)
                .where(TrialRow.study_id == self.id, TrialRow.config_hash == config_hash, TrialRow.state == "failed")
                .order_by(TrialRow.number)
            )
            for row in rows:
                if not is_retryable(row.error) and row.number not in exclude:
                    return _trial_info(row)
        return None

    # -- runs -------------------------------------------------------------------------------------------
    def add_run(
        self,
        trial_number: int,
        seed: int,
        *,
        config_hash: str,
        config: dict[str, Any],
        search_params: dict[str, Any],
        versions: dict[str, Any] | None = None,
        plugins: list[dict[str, Any]] | None = None,
        host: str | None = None,
        device: str | None = None,
        checkpoint_dir: str | None = None,
    ) -> int:
        """A new run row in state ``running``; returns its id."""
        now = utcnow()
        row = RunRow(
            study_id=self.id, trial_number=trial_number, seed=seed, config_hash=config_hash, config=config,
            search_params=search_params, status="running", metrics={}, versions=versions or {}, plugins=plugins or [],
            host=host, device=device, started_at=now, heartbeat_at=now, checkpoint_dir=checkpoint_dir,
        )
        with self.store.session() as s, s.begin():
            s.add(row)
            s.flush()
            return int(row.id)

    def fail_running(self, trial_number: int, reason: str) -> int:
        """Mark the trial's runs still ``running`` (and the trial, if running) failed with ``reason``."""
        now = utcnow()
        with self.store.session() as s, s.begin():
            n = s.execute(
                update(RunRow)
                .where(RunRow.study_id == self.id, RunRow.trial_number == trial_number, RunRow.status == "running")
                .values(status="failed", error=reason, finished_at=now)
            ).rowcount  # type: ignore[attr-defined]
            s.execute(
                update(TrialRow)
                .where(TrialRow.study_id == self.id, TrialRow.number == trial_number, TrialRow.state == "running")
                .values(state="failed", error=reason, finished_at=now)
            )
        return int(n or 0)

    def completed_runs(self, config_hash: str) -> dict[int, RunInfo]:
        """The first completed run of this configuration for each seed."""
        with self.store.session() as s:
            rows = s.scalars(
                select(RunRow)
                .where(RunRow.study_id == self.id, RunRow.config_hash == config_hash, RunRow.status == "completed")
                .order_by(RunRow.id)
            )
            out: dict[int, RunInfo] = {}
            for row in rows:
                out.setdefault(row.seed, _run_info(row))
            return out

    def running_twin(self, config_hash: str, seed: int, trial_number: int) -> RunInfo | None:
        """A run of the same configuration and seed that another trial is training right now."""
        with self.store.session() as s:
            row = s.scalars(
                select(RunRow).where(
                    RunRow.study_id == self.id, RunRow.config_hash == config_hash, RunRow.seed == seed,
                    RunRow.status == "running", RunRow.trial_number != trial_number,
                ).limit(1)
            ).one_or_none()
            return None if row is None else _run_info(row)

    def running_runs(self) -> list[RunInfo]:
        with self.store.session() as s:
            rows = s.scalars(select(RunRow).where(RunRow.study_id == self.id, RunRow.status == "running"))
            return [_run_info(r) for r in rows]
