"""Checkpoints: a run SIGKILLed at step k resumes from its last checkpoint and ends exactly like a run that
was never interrupted (CPU, fixed seed); a study's retried trial resumes the dead worker's run; ``deconstruct
eval`` re-computes a stored run's metrics from its checkpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from deconstruct.spec import load_spec
from deconstruct.train import CheckpointError, read_checkpoint, train

KILL_AT = 13  # killed here; the last checkpoint (every 5 steps) is at step 10


@pytest.fixture
def spec(tiny) -> dict:
    tiny["model"]["dropout"] = 0.1  # the global RNG matters too
    tiny["train"].update(steps=20, eval_every=5, checkpoint_every=5)
    return tiny


@pytest.fixture
def cli():
    """``cli(args...) -> Result``; ``cli.json(args...)`` parses stdout (asserting exit code 0)."""
    from typer.testing import CliRunner

    from deconstruct.cli import build_app

    app = build_app()

    def invoke(*args):
        return CliRunner().invoke(app, [str(a) for a in args])

    def as_json(*args):
        result = invoke(*args, "--format", "json")
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    invoke.json = as_json
    return invoke


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch):
    """Runs compared bit for bit are all single-threaded, here and in the children (CI sets no
    OMP_NUM_THREADS; two threads reduce floats in another order than the one-threaded child)."""
    import torch

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _kill_child_at_step(code: str, marker: str = "at-step") -> None:
    """Run ``code`` in a child that prints ``marker`` and blocks when it reaches step KILL_AT; SIGKILL it there
    (waiting on that line, not on time)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()  # blocks until the child is at step KILL_AT (or died)
        assert line.strip() == marker, f"child did not reach step {KILL_AT}: {line!r} {proc.stderr.read()[-2000:]}"
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=120) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


BLOCK_AT_STEP = f"""
    import sys, torch
    torch.set_num_threads(1)
    class Block:
        def on_step(self, step, loss, tps):
            if step == {KILL_AT}:
                print("at-step", flush=True)
                sys.stdin.readline()  # wait here to be killed
"""


def test_a_killed_run_resumes_to_the_same_result(spec, tmp_path):
    resolved = load_spec(spec)
    uninterrupted = train(resolved, seed=0)
    ckpt = tmp_path / "ckpt"
    _kill_child_at_step(BLOCK_AT_STEP + f"""
    from deconstruct.spec import load_spec
    from deconstruct.train import train
    train(load_spec({spec!r}), seed=0, callback=Block(), checkpoint_dir={str(ckpt)!r})
    """)
    assert read_checkpoint(ckpt)["step"] == 10

    seen = {}

    class Watch:
        def on_start(self, info):
            seen.update(info)

    resumed = train(resolved, seed=0, checkpoint_dir=ckpt, callback=Watch())
    assert seen["resumed_from"] == 10
    assert resumed.val_loss == uninterrupted.val_loss  # exactly: the same steps on the same batches
    assert resumed.history == uninterrupted.history and resumed.steps == 20
    assert read_checkpoint(ckpt)["step"] == 20  # the end is saved too

    other = load_spec(spec, ["model.d_model=16"])
    with pytest.raises(CheckpointError, match="another checkpoint directory"):
        train(other, seed=0, checkpoint_dir=ckpt)


def test_a_dead_workers_trial_is_retried_from_its_checkpoint(spec, tmp_path, cli):
    from deconstruct.store import Store
    from deconstruct.study import StudyEvents, run_study

    spec = {**spec, "name": "ck", "study": {"sampler": "grid"}}
    storage = f"sqlite:///{tmp_path / 'a.db'}"
    _kill_child_at_step(BLOCK_AT_STEP + f"""
    from deconstruct.study import StudyEvents, run_study
    class Events(Block, StudyEvents):
        pass
    run_study({spec!r}, storage={storage!r}, events=Events())
    """)

    notes = []

    class Notes(StudyEvents):
        def on_note(self, message):
            notes.append(message)

    summary = run_study(spec, storage=storage, events=Notes(), heartbeat_interval=1)
    assert summary.states == {"failed": 1, "completed": 1}
    assert any("resumed from the checkpoint at step 10" in n for n in notes), notes
    fresh = run_study(spec, storage=f"sqlite:///{tmp_path / 'b.db'}")
    assert summary.best["values"] == fresh.best["values"]  # the resumed trial equals an uninterrupted one

    runs = Store(storage).runs("ck")
    dead, done = runs
    assert dead.status == "failed" and done.status == "completed"
    assert dead.checkpoint_dir == done.checkpoint_dir == str(tmp_path / "checkpoints" / "ck" / f"{done.config_hash}-seed0")

    # `deconstruct eval RUN`: the stored run's numbers, re-computed from its final weights
    out = cli.json("eval", str(done.id), "--storage", storage, "--skip-relaxed")
    assert out["step"] == 20
    assert out["metrics"]["val_loss"] == pytest.approx(done.val_loss, abs=1e-6)
    for name in ("skip_block_val_loss", "skip_mixer_val_loss"):
        assert out["metrics"][name] == pytest.approx(done.metrics[name], abs=1e-6)
    assert {name for _, _, name, _ in out["diagnostics"]} >= {"entropy", "sink"}
    text = cli("eval", str(done.id), "--storage", storage)
    assert text.exit_code == 0 and "attention diagnostics" in text.stdout and "val_loss" in text.stdout

    for bad, why in (("999", "no run 999"), ("nowhere", "neither a run id")):
        result = cli("eval", bad, "--storage", storage)
        assert result.exit_code == 2 and why in result.stderr and "Traceback" not in result.output


def test_train_cli_saves_and_resumes(spec, tiny_file, tmp_path, cli):
    path = tiny_file(spec)
    first = cli("train", path, "--checkpoint-dir", tmp_path / "c", "--format", "json")
    assert first.exit_code == 0 and "checkpoints in" in first.stderr
    again = cli("train", path, "--checkpoint-dir", tmp_path / "c", "--format", "json")
    assert again.exit_code == 0 and "resuming from" in again.stderr
    assert json.loads(again.stdout)["val_loss"] == json.loads(first.stdout)["val_loss"]
