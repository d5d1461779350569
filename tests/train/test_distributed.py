"""Data parallelism: `--nproc 2` (torchrun, DDP over gloo on the CPU) takes the same steps as one process
with the same global batch, and only rank 0 prints or writes to the store."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from deconstruct.spec import load_spec
from deconstruct.train import train


@pytest.fixture
def spec(tiny) -> dict:
    tiny["train"].update(steps=20, batch_size=8, eval_every=10, eval_batches=2)
    return tiny


def _deconstruct(*args, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "deconstruct", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=timeout)


def test_two_gloo_processes_equal_one(spec, tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    one = train(load_spec(spec), seed=0, device="cpu")
    two = _deconstruct("train", path, "--nproc", 2, "--device", "cpu", "--format", "json")
    assert two.returncode == 0, two.stderr[-3000:]
    result = json.loads(two.stdout)  # one JSON document: only rank 0 printed
    assert result["steps"] == 20 and result["tokens"] == one.tokens  # the global batch, not twice it
    assert result["val_loss"] == pytest.approx(one.val_loss, abs=1e-5)
    assert result["val_loss"] != pytest.approx(train(load_spec(spec), seed=1, device="cpu").val_loss, abs=1e-3)


def test_a_study_worker_trains_each_run_over_two_processes(spec, tmp_path):
    from deconstruct.store import Store
    from deconstruct.study import StudyRunner, run_study

    spec = {**spec, "name": "dp", "search": {"model.channel_mixer": ["mlp", "none"]}, "study": {"sampler": "grid"}}
    storage = f"sqlite:///{tmp_path / 'dp.db'}"
    StudyRunner(spec, storage=storage)  # creates the study; the worker joins it
    out = _deconstruct("study", "worker", "dp", "--storage", storage, "--nproc", 2, "--device", "cpu", "--format", "json")
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(out.stdout)
    assert summary["states"] == {"completed": 2} and summary["trained"] == 2
    runs = Store(storage).runs("dp")
    assert len(runs) == 2 and {r.status for r in runs} == {"completed"}  # rank 1 wrote nothing

    single = run_study(spec, storage=f"sqlite:///{tmp_path / 'one.db'}", device="cpu")
    by_params = {json.dumps(t.search_params, sort_keys=True): t.values[0] for t in Store(storage).trials("dp")}
    for t in Store(f"sqlite:///{tmp_path / 'one.db'}").trials("dp"):
        assert by_params[json.dumps(t.search_params, sort_keys=True)] == pytest.approx(t.values[0], abs=1e-5)
    assert single.counted == 2


def test_a_batch_that_does_not_split_is_refused_before_launching(spec, tmp_path):
    from typer.testing import CliRunner

    from deconstruct.cli import build_app

    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    result = CliRunner().invoke(build_app(), ["train", str(path), "--nproc", "3"])
    assert result.exit_code == 2 and "does not split over 3 processes" in result.stderr
