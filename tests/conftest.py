"""Shared fixtures: tiny specs that train in well under a second on the stdlib corpus, the command line, and
a fresh database. The helpers behind them live in ``_support.py`` (importable from every test module)."""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import pytest
import yaml

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:  # --import-mode=importlib does not put test folders on sys.path
    sys.path.insert(0, HERE)

from _support import Cli, cli, tiny_spec  # noqa: E402


@pytest.fixture
def tiny() -> dict:
    """A fresh tiny spec as a dict (edit freely): :func:`_support.tiny_spec` with its defaults."""
    return tiny_spec()


@pytest.fixture
def tiny_file(tmp_path: Path, tiny: dict):
    """Write a (possibly edited) tiny spec to a YAML file and return its path."""

    def write(data: dict | None = None, name: str = "tiny.yaml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(data if data is not None else tiny, sort_keys=False))
        return path

    return write


@pytest.fixture(name="cli")
def cli_fixture() -> Cli:
    """The command line: ``cli(*args)`` in process, ``cli.json(*args)``, ``cli.run(*args, paths=…)`` in a
    fresh interpreter (see :class:`_support.Cli`)."""
    return cli


@pytest.fixture(params=["sqlite", "postgresql"])
def any_storage(request, tmp_path: Path):
    """A fresh database per test: a SQLite file, and a fresh PostgreSQL database when
    ``DECONSTRUCT_TEST_POSTGRES`` names a server (``.ci/run`` starts one)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'studies.db'}"
        return
    server = os.environ.get("DECONSTRUCT_TEST_POSTGRES")
    if not server:
        if os.environ.get("CI"):  # .ci/run starts a server and sets the URL: a skip there would hide a gap
            pytest.fail("CI is set but DECONSTRUCT_TEST_POSTGRES is not: .ci/run must start PostgreSQL")
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
