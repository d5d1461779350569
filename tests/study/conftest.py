"""Fixtures for study tests: a spec small enough that a run takes a few milliseconds, a storage URL in
``tmp_path``, and the CLI."""

from __future__ import annotations

import copy
import json
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

BASE: dict[str, Any] = {
    "name": "s",
    "task": {"name": "lm", "corpus": "stdlib", "seq_len": 16, "max_bytes": 200_000},
    "model": {"d_model": 16, "layers": 1, "heads": 2},
    "train": {"steps": 4, "batch_size": 4, "eval_every": 2, "eval_batches": 1, "seeds": [0]},
    "study": {"sampler": "grid"},
}


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models on 2 shared cores run fastest on one thread (and the tests do not fight each other)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def spec() -> dict[str, Any]:
    return copy.deepcopy(BASE)


@pytest.fixture
def storage(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'studies.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def any_storage(request, tmp_path: Path):
    """A SQLite file, and a fresh PostgreSQL database when ``DECONSTRUCT_TEST_POSTGRES`` names a server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'studies.db'}"
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


@pytest.fixture
def write(tmp_path: Path):
    def write(data: dict[str, Any], name: str = "spec.yaml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    return write


@pytest.fixture
def cli():
    """``cli(args...) -> Result``; ``cli.json(args...)`` parses stdout (asserting exit code 0)."""
    from typer.testing import CliRunner

    from deconstruct.cli import build_app

    app = build_app()

    def invoke(*args: str, input: str | None = None):
        return CliRunner().invoke(app, [str(a) for a in args], input=input)

    def as_json(*args: str):
        result = invoke(*args, "--format", "json")
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    invoke.json = as_json  # type: ignore[attr-defined]
    return invoke
