"""``url``: a fresh database per test — a SQLite file, and a PostgreSQL database when
``DECONSTRUCT_TEST_POSTGRES`` names a server (e.g. ``postgresql://user@/postgres?host=/tmp/pg&port=5432``)."""

from __future__ import annotations

import os
import uuid

import pytest


def fresh_database(kind: str, tmp_path):
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'db.sqlite'}"
        return
    server = os.environ.get("DECONSTRUCT_TEST_POSTGRES")
    if not server:
        pytest.skip("set DECONSTRUCT_TEST_POSTGRES to a PostgreSQL server URL to run this on PostgreSQL")
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"dc_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(server).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    yield from fresh_database(request.param, tmp_path)
