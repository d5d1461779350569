"""Fixtures for study tests: a spec small enough that a run takes a few milliseconds, a storage URL in
``tmp_path``, and the CLI."""

from __future__ import annotations

import copy
import json
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
