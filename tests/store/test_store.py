"""The store: migrations, SQLite settings, and the read/write API on a real SQLite file."""

from __future__ import annotations

import math

import pytest
from sqlalchemy import create_engine, inspect, text

from deconstruct._errors import DeconstructError
from deconstruct.store import SCHEMA_VERSION, Store, StudyNotFound, default_url
from deconstruct.store._migrations import MIGRATIONS, current_version, upgrade
from deconstruct.store._schema import Base
from deconstruct.train import TrainResult


def _columns(engine) -> dict[str, set[str]]:
    insp = inspect(engine)
    return {t: {c["name"] for c in insp.get_columns(t)} for t in insp.get_table_names() if t.startswith("dc_")}


def test_a_new_database_has_exactly_the_models_tables(url):
    store = Store(url)
    assert store.version == SCHEMA_VERSION == MIGRATIONS[-1][0]
    expected = {t.name: {c.name for c in t.columns} for t in Base.metadata.sorted_tables}
    assert _columns(store.engine) == expected


def test_upgrade_from_the_first_version_keeps_the_data(url):
    engine = create_engine(url)
    assert upgrade(engine, to=1) == 1  # a database of the first deconstruct
    with engine.begin() as conn:  # what an older deconstruct wrote
        conn.execute(text(
            "INSERT INTO dc_study (id, name, spec_text, spec_hash, spec_json, objectives, directions, "
            "deconstruct_version, torch_version, created_at) VALUES (1, 'old', '', 'h', '{}', '[\"val_loss\"]', "
            "'[\"minimize\"]', '0.0.1', '2', '2025-01-01 00:00:00')"))
        conn.execute(text(
            "INSERT INTO dc_run (id, study_id, trial_number, seed, config_hash, config, search_params, status, "
            "val_loss, metrics, versions, plugins, started_at) VALUES (1, 1, 0, 0, 'c', '{}', '{}', 'completed', "
            "2.5, '{}', '{}', '[]', '2025-01-01 00:00:00')"))
    assert "dc_trial" not in _columns(engine)
    engine.dispose()

    store = Store(url)  # opening upgrades
    assert store.version == SCHEMA_VERSION
    assert _columns(store.engine) == {t.name: {c.name for c in t.columns} for t in Base.metadata.sorted_tables}
    [run] = store.runs("old")
    assert run.val_loss == 2.5 and run.steps is None and run.trial_state is None and run.checkpoint_dir is None
    with store.engine.connect() as conn:
        assert [r[0] for r in conn.execute(text("SELECT version FROM dc_schema_version ORDER BY version"))] == [
            v for v, _ in MIGRATIONS]
    assert Store(url).version == SCHEMA_VERSION  # idempotent
    store.close()


def test_a_newer_schema_is_refused(url):
    store = Store(url)
    with store.engine.begin() as conn:
        conn.execute(text("INSERT INTO dc_schema_version (version, applied_at) VALUES (99, '2030-01-01')"))
        assert current_version(conn) == 99
    with pytest.raises(DeconstructError, match="newer than this deconstruct"):
        Store(url)


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'sub' / 'dir' / 'db.sqlite'}")  # folders are created
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 10_000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_default_url(monkeypatch):
    monkeypatch.delenv("DECONSTRUCT_STORAGE", raising=False)
    assert default_url() == "sqlite:///deconstruct.db"
    monkeypatch.setenv("DECONSTRUCT_STORAGE", "postgresql://u@h/db")
    assert default_url() == "postgresql://u@h/db"


def test_reading_a_missing_database_does_not_create_it(tmp_path):
    with pytest.raises(StudyNotFound, match="no database"):
        Store(f"sqlite:///{tmp_path / 'missing.db'}", create=False)
    assert not (tmp_path / "missing.db").exists()


def test_write_and_read_a_study(url):
    store = Store(url)
    info = store.create_study("st", spec_text="name: st", spec_hash="h1", spec_json={"name": "st"},
                              objectives=["val_loss", "params"], directions=["minimize", "minimize"])
    assert store.create_study("st", spec_text="", spec_hash="other", spec_json={}, objectives=[], directions=[]).id == info.id

    rows = store.for_study(info.id)
    rows.start_trial(0, search_params={"model.mixer.kind": "mlp"}, host="h", pid=1)
    run = rows.add_run(0, 7, config_hash="c0", config={"a": 1}, search_params={"model.mixer.kind": "mlp"},
                        versions={"torch": "x"}, plugins=[{"name": "p", "version": "1"}], host="h")
    assert store.add_metrics(run, [(1, "val_loss", 3.0), (1, "val_loss", 9.0), (2, "val_loss", 2.0),
                                   (2, "train_loss", math.nan), (2, "lr", 0.1)]) == 3  # duplicate, NaN skipped
    assert store.add_metrics(run, [(2, "val_loss", 2.0)]) == 0
    store.finish_run(run, "completed", wall_seconds=1.5, result=TrainResult(
        val_loss=2.0, params=3_000_000_000, flops_per_token=10**12, tokens=64, tokens_per_second=5.0, seconds=1.0,
        device="cpu", steps=2, seed=7, config_hash="c0", peak_memory_bytes=5 * 2**30, metrics={"bits_per_byte": 2.9}))
    rows.finish_trial(0, "completed", values=[2.0, 3e9], reused=[])
    rows.start_trial(1, search_params={"model.mixer.kind": "attention"})
    failed = rows.add_run(1, 7, config_hash="c1", config={}, search_params={})
    assert rows.fail_running(1, "worker died (test)") == 1

    [s] = store.studies()
    assert s.name == "st" and s.trials == {"completed": 1, "failed": 1} and s.runs == 2
    assert s.objectives == ["val_loss", "params"] and store.study("st").spec == {"name": "st"}
    t0, t1 = store.trials("st")
    assert t0.values == [2.0, 3e9] and t0.state == "completed" and t0.host == "h"
    assert t1.state == "failed" and t1.error == "worker died (test)"
    r0, r1 = store.runs("st")
    assert (r0.id, r0.seed, r0.status, r0.trial_state, r0.steps) == (run, 7, "completed", "completed", 2)
    assert r0.params == 3_000_000_000 and r0.peak_memory_bytes == 5 * 2**30  # beyond 32-bit integers
    assert r0.value("bits_per_byte") == 2.9 and r0.value("seconds") == 1.0 and r0.value("wall_seconds") == 1.5
    assert (r1.id, r1.status, r1.error) == (failed, "failed", "worker died (test)")
    assert [r.id for r in store.runs("st", status="completed")] == [run]
    assert store.curves("st") == {run: {"lr": [(2, 0.1)], "val_loss": [(1, 3.0), (2, 2.0)]}}
    assert store.curves("st", metric="lr") == {run: {"lr": [(2, 0.1)]}}
    assert set(rows.completed_runs("c0")) == {7} and rows.completed_runs("c1") == {}
    assert rows.failed_config("c1") is None  # a dead worker says nothing about its configuration
    assert store.trials("st")[0].to_dict()["values"] == [2.0, 3e9]

    with pytest.raises(StudyNotFound, match="studies there: st"):
        store.runs("nope")
    assert store.delete_study("st") and not store.delete_study("st")
    with store.engine.connect() as conn:
        for table in ("dc_study", "dc_trial", "dc_run", "dc_metric"):
            assert conn.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar() == 0
    store.close()
