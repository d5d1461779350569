"""Fixtures for study tests: a spec small enough that a run takes a few milliseconds, a storage URL in
``tmp_path``, and a YAML writer (the CLI is tests/conftest.py's ``cli``)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from _support import tiny_spec

# the shared tiny spec, smaller still: one layer of width 16 over 16 bytes
BASE: dict[str, Any] = tiny_spec(name="s", task={"seq_len": 16}, d_model=16, layers=1, study={"sampler": "grid"})


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch):
    """Tiny models on 2 shared cores run fastest on one thread (and the tests do not fight each other). Child
    processes (workers, submitted jobs) get one thread too, so a run they finish equals the same run done
    in-process to the last bit (a different thread count changes the order of float reductions)."""
    import torch

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
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
