"""Schema migrations for deconstruct's ``dc_`` tables: a short ordered list of functions.

Each migration takes a connection inside a transaction and moves the database from version ``n - 1`` to
``n``; the versions applied are rows of ``dc_schema_version``. A migration is a frozen snapshot (like an
alembic script): it spells out the tables and columns *as they were at that version*, so that upgrading an
old database and creating a new one always pass through the same steps. ``tests/store`` checks that a
database migrated to :data:`HEAD` has exactly the tables and columns of :mod:`deconstruct.store._schema`.

To change the schema: edit ``_schema.py``, append a function here, add it to :data:`MIGRATIONS`.
Only add (tables, nullable columns, indexes): the report and third-party tools read these tables.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timezone

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Connection,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    inspect,
    select,
    text,
)
from sqlalchemy.exc import DBAPIError

from deconstruct._errors import DeconstructError, StorageError

VERSION_TABLE = "dc_schema_version"


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _v1_initial(conn: Connection) -> None:
    """Study, run, metric and diagnostic tables (DESIGN.md, "Store")."""
    md = MetaData()
    Table(VERSION_TABLE, md, Column("version", Integer, primary_key=True), Column("applied_at", DateTime))
    Table(
        "dc_study", md,
        Column("id", Integer, primary_key=True),
        Column("name", String(255), unique=True, nullable=False),
        Column("spec_text", Text, nullable=False),
        Column("spec_hash", String(64), nullable=False),
        Column("spec_json", JSON, nullable=False),
        Column("objectives", JSON, nullable=False),
        Column("directions", JSON, nullable=False),
        Column("deconstruct_version", String(32), nullable=False),
        Column("torch_version", String(64), nullable=False),
        Column("created_at", DateTime, nullable=False),
    )
    Table(
        "dc_run", md,
        Column("id", Integer, primary_key=True),
        Column("study_id", Integer, ForeignKey("dc_study.id", ondelete="CASCADE"), nullable=False),
        Column("trial_number", Integer, nullable=False),
        Column("seed", Integer, nullable=False),
        Column("config_hash", String(64), nullable=False),
        Column("config", JSON, nullable=False),
        Column("search_params", JSON, nullable=False),
        Column("status", String(16), nullable=False),
        Column("error", Text),
        Column("val_loss", Float),
        Column("metrics", JSON, nullable=False),
        Column("params", BigInteger),
        Column("flops_per_token", BigInteger),
        Column("tokens", BigInteger),
        Column("tokens_per_second", Float),
        Column("peak_memory_bytes", BigInteger),
        Column("wall_seconds", Float),
        Column("device", String(32)),
        Column("versions", JSON, nullable=False),
        Column("plugins", JSON, nullable=False),
        Column("host", String(255)),
        Column("started_at", DateTime, nullable=False),
        Column("finished_at", DateTime),
        Column("heartbeat_at", DateTime),
        UniqueConstraint("study_id", "trial_number", "seed", name="uq_dc_run_trial_seed"),
        Index("ix_dc_run_study_config", "study_id", "config_hash"),
    )
    Table(
        "dc_metric", md,
        Column("id", Integer, primary_key=True),
        Column("run_id", Integer, ForeignKey("dc_run.id", ondelete="CASCADE"), nullable=False, index=True),
        Column("step", Integer, nullable=False),
        Column("name", String(64), nullable=False),
        Column("value", Float, nullable=False),
        UniqueConstraint("run_id", "step", "name", name="uq_dc_metric"),
    )
    Table(
        "dc_diagnostic", md,
        Column("id", Integer, primary_key=True),
        Column("run_id", Integer, ForeignKey("dc_run.id", ondelete="CASCADE"), nullable=False, index=True),
        Column("layer", Integer, nullable=False),
        Column("head", Integer, nullable=False),
        Column("name", String(64), nullable=False),
        Column("value", Float, nullable=False),
    )
    md.create_all(conn)


def _v2_trials(conn: Connection) -> None:
    """``dc_trial`` (trial state, values and failure reason without Optuna) and ``dc_run.steps``."""
    md = MetaData()
    Table("dc_study", md, Column("id", Integer, primary_key=True))  # FK target only; not created
    trial = Table(
        "dc_trial", md,
        Column("id", Integer, primary_key=True),
        Column("study_id", Integer, ForeignKey("dc_study.id", ondelete="CASCADE"), nullable=False, index=True),
        Column("number", Integer, nullable=False),
        Column("state", String(16), nullable=False),
        Column("objective_values", JSON),
        Column("search_params", JSON, nullable=False),
        Column("inactive_params", JSON, nullable=False),
        Column("config_hash", String(64)),
        Column("error", Text),
        Column("reused", JSON, nullable=False),
        Column("retry_of", Integer),
        Column("host", String(255)),
        Column("pid", Integer),
        Column("started_at", DateTime, nullable=False),
        Column("finished_at", DateTime),
        UniqueConstraint("study_id", "number", name="uq_dc_trial_number"),
    )
    trial.create(conn)
    _add_column(conn, "dc_run", "steps", Integer())


def _v3_checkpoints(conn: Connection) -> None:
    """``dc_run.checkpoint_dir``: the directory of the run's checkpoints (``train.checkpoint_every``)."""
    _add_column(conn, "dc_run", "checkpoint_dir", Text())


def _add_column(conn: Connection, table: str, name: str, type_) -> None:
    """``ALTER TABLE … ADD COLUMN`` (nullable), in the dialect's own type spelling."""
    prep = conn.dialect.identifier_preparer
    conn.execute(text(f"ALTER TABLE {prep.quote(table)} ADD COLUMN {prep.quote(name)} {type_.compile(dialect=conn.dialect)}"))


#: (version, migration) in order; the last version is :data:`HEAD`
MIGRATIONS: list[tuple[int, Callable[[Connection], None]]] = [
    (1, _v1_initial),
    (2, _v2_trials),
    (3, _v3_checkpoints),
]
HEAD = MIGRATIONS[-1][0]


def current_version(conn: Connection) -> int:
    """The highest applied version (0: no deconstruct tables yet)."""
    if not inspect(conn).has_table(VERSION_TABLE):
        return 0
    table = Table(VERSION_TABLE, MetaData(), Column("version", Integer))
    value = conn.execute(select(table.c.version).order_by(table.c.version.desc()).limit(1)).scalar()
    return int(value or 0)


def upgrade(engine: Engine, to: int | None = None) -> int:
    """Apply every migration after the database's version, up to ``to`` (default :data:`HEAD`).

    Safe when several processes start at once: a migration that fails because another process applied it
    first is detected by re-reading the version. Returns the version the database is at.
    """
    target = HEAD if to is None else to
    for attempt in range(5):
        try:
            return _upgrade_once(engine, target)
        except (DBAPIError, StorageError):  # StorageError: what the engine's error hook makes of a DBAPIError
            # another worker may be migrating the same database: wait, re-read, retry
            time.sleep(0.2 * (attempt + 1))
            with engine.connect() as conn:
                if current_version(conn) >= target:
                    return current_version(conn)
    return _upgrade_once(engine, target)


def _upgrade_once(engine: Engine, target: int) -> int:
    with engine.connect() as conn:
        version = current_version(conn)
    if version > HEAD:
        raise DeconstructError(
            f"the database has deconstruct schema v{version}, newer than this deconstruct (v{HEAD}); "
            "upgrade deconstruct to use it"
        )
    versions = Table(VERSION_TABLE, MetaData(), Column("version", Integer, primary_key=True), Column("applied_at", DateTime))
    for number, migrate in MIGRATIONS:
        if version < number <= target:
            with engine.begin() as conn:
                if current_version(conn) >= number:  # applied meanwhile by another process
                    continue
                migrate(conn)
                conn.execute(versions.insert().values(version=number, applied_at=_now()))
            version = number
    return version
