"""deconstruct's own tables (prefix ``dc_``), beside Optuna's in the same database.

One row per study, one per Optuna trial, one per (trial, seed) run, one per (run, step, name) metric and one
per (run, layer, head, name) attention diagnostic. JSON columns hold the resolved configuration and the
searched parameters so a report never needs Optuna objects or the spec file.

These classes describe the *current* schema. Databases are created and upgraded by the ordered migrations in
:mod:`deconstruct.store._migrations` (never by ``create_all``): a column or table added here needs a
migration there, and ``tests/store`` checks that a migrated database matches these classes.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    pass


class SchemaVersion(Base):
    __tablename__ = "dc_schema_version"

    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    applied_at: Mapped[datetime] = mapped_column(DateTime)


class StudyRow(Base):
    __tablename__ = "dc_study"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)  # also the Optuna study name
    spec_text: Mapped[str] = mapped_column(Text)  # the YAML as given
    spec_hash: Mapped[str] = mapped_column(String(64))  # hash of the search-relevant spec (space + base config)
    spec_json: Mapped[dict] = mapped_column(JSON)  # validated spec (after --set), as data
    objectives: Mapped[list] = mapped_column(JSON)  # e.g. ["val_loss"] or ["val_loss", "params"]
    directions: Mapped[list] = mapped_column(JSON)  # e.g. ["minimize"]
    deconstruct_version: Mapped[str] = mapped_column(String(32))
    torch_version: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime)

    runs: Mapped[list[RunRow]] = relationship(back_populates="study", cascade="all, delete-orphan")
    trials: Mapped[list[TrialRow]] = relationship(back_populates="study", cascade="all, delete-orphan")


class TrialRow(Base):
    """One Optuna trial as deconstruct saw it (schema v2): the state, values and reason live here too, so a
    report or ``study show`` never needs Optuna. A trial whose every seed was already trained has no runs of
    its own (``reused``)."""

    __tablename__ = "dc_trial"
    __table_args__ = (UniqueConstraint("study_id", "number", name="uq_dc_trial_number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("dc_study.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)  # Optuna's trial number
    state: Mapped[str] = mapped_column(String(16))  # running | completed | failed | pruned
    objective_values: Mapped[list | None] = mapped_column(JSON, nullable=True)  # one per objective (completed)
    search_params: Mapped[dict] = mapped_column(JSON, default=dict)  # active sampled values, by dotted path
    inactive_params: Mapped[list] = mapped_column(JSON, default=list)  # searched paths that did not apply
    config_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)  # None: the spec was invalid
    error: Mapped[str | None] = mapped_column(Text, nullable=True)  # why it failed or was pruned
    reused: Mapped[list] = mapped_column(JSON, default=list)  # seeds whose completed run was reused
    retry_of: Mapped[int | None] = mapped_column(Integer, nullable=True)  # trial number this one retries
    host: Mapped[str | None] = mapped_column(String(255), nullable=True)
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    started_at: Mapped[datetime] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)

    study: Mapped[StudyRow] = relationship(back_populates="trials")


class RunRow(Base):
    """One training run: a (trial, seed) pair."""

    __tablename__ = "dc_run"
    __table_args__ = (
        UniqueConstraint("study_id", "trial_number", "seed", name="uq_dc_run_trial_seed"),
        Index("ix_dc_run_study_config", "study_id", "config_hash"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("dc_study.id", ondelete="CASCADE"))
    trial_number: Mapped[int] = mapped_column(Integer)
    seed: Mapped[int] = mapped_column(Integer)
    config_hash: Mapped[str] = mapped_column(String(64))
    config: Mapped[dict] = mapped_column(JSON)  # ResolvedSpec.config()
    search_params: Mapped[dict] = mapped_column(JSON)  # the values the sampler chose, by dotted path
    status: Mapped[str] = mapped_column(String(16))  # running | completed | failed | pruned
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    val_loss: Mapped[float | None] = mapped_column(Float, nullable=True)
    metrics: Mapped[dict] = mapped_column(JSON, default=dict)  # final metrics: bits_per_byte, skip_block_val_loss, …
    params: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    flops_per_token: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    tokens: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    tokens_per_second: Mapped[float | None] = mapped_column(Float, nullable=True)
    peak_memory_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    wall_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    device: Mapped[str | None] = mapped_column(String(32), nullable=True)
    versions: Mapped[dict] = mapped_column(JSON, default=dict)  # python, torch, deconstruct
    plugins: Mapped[list] = mapped_column(JSON, default=list)  # [{name, version}] that provided its mixers
    host: Mapped[str | None] = mapped_column(String(255), nullable=True)
    started_at: Mapped[datetime] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    steps: Mapped[int | None] = mapped_column(Integer, nullable=True)  # optimizer steps taken (schema v2)
    checkpoint_dir: Mapped[str | None] = mapped_column(Text, nullable=True)  # where its checkpoints are (schema v3)

    study: Mapped[StudyRow] = relationship(back_populates="runs")
    curve: Mapped[list[MetricRow]] = relationship(back_populates="run", cascade="all, delete-orphan")
    diagnostics: Mapped[list[DiagnosticRow]] = relationship(back_populates="run", cascade="all, delete-orphan")


class MetricRow(Base):
    """A learning-curve point: (run, step, name) → value."""

    __tablename__ = "dc_metric"
    __table_args__ = (UniqueConstraint("run_id", "step", "name", name="uq_dc_metric"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("dc_run.id", ondelete="CASCADE"), index=True)
    step: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(64))
    value: Mapped[float] = mapped_column(Float)

    run: Mapped[RunRow] = relationship(back_populates="curve")


class DiagnosticRow(Base):
    """An attention indicator of one head: entropy, sink, diversity, local focus (MECHANISMS.md §1)."""

    __tablename__ = "dc_diagnostic"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("dc_run.id", ondelete="CASCADE"), index=True)
    layer: Mapped[int] = mapped_column(Integer)
    head: Mapped[int] = mapped_column(Integer)  # -1: a per-layer value
    name: Mapped[str] = mapped_column(String(64))
    value: Mapped[float] = mapped_column(Float)

    run: Mapped[RunRow] = relationship(back_populates="diagnostics")
