"""A study process killed with SIGKILL or interrupted with SIGINT loses nothing: the next run continues."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import optuna
import pytest

from deconstruct.store import Store

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX signals")


def _start(path: Path, storage: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DECONSTRUCT_HEARTBEAT_INTERVAL": "1",
           "DECONSTRUCT_GRACE_PERIOD": "2", "DECONSTRUCT_DEBUG": "", "DECONSTRUCT_PROGRESS_INTERVAL": "0"}
    return subprocess.Popen(
        [sys.executable, "-m", "deconstruct", "study", "run", str(path), "--storage", storage],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _wait_for_training(proc: subprocess.Popen, past_step: int = 20, bound: float = 900.0) -> list[str]:
    """Until the study prints a progress line past step ``past_step`` (its first evaluation is stored by then):
    an event on the process's stderr, not a speed assumption; ``bound`` only stops a hung process."""
    import threading

    timer = threading.Timer(bound, proc.kill)
    timer.start()
    seen: list[str] = []
    try:
        for line in proc.stderr:  # type: ignore[union-attr]
            seen.append(line)
            words = line.split()
            if "step" in words and int(words[words.index("step") + 1].split("/")[0]) > past_step:
                return seen
    finally:
        timer.cancel()
    raise AssertionError("the study ended without training: " + "".join(seen[-5:]))


@pytest.fixture
def slow_spec(spec, write):
    """Four configurations whose runs last long enough (~0.5 s) to be caught in the middle."""
    spec["search"] = {"model.mixer.kind": ["attention", "mlp"], "model.channel_mixer": ["mlp", "none"]}
    spec["train"].update(steps=80, eval_every=20)
    return write(spec)


def _each_configuration_completed_once(storage: str) -> None:
    runs = Store(storage).runs("s", status="completed")
    assert sorted(Counter(r.config_hash for r in runs).values()) == [1, 1, 1, 1]
    trials = optuna.load_study(study_name="s", storage=storage).get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 4 and len({tuple(sorted(t.params.items())) for t in complete}) == 4
    assert not [t for t in trials if t.state in (optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.WAITING)]


def test_sigkill_then_rerun_completes_every_configuration_once(slow_spec, storage, tmp_path, cli, monkeypatch):
    proc = _start(slow_spec, storage)
    _wait_for_training(proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    [killed] = [t for t in Store(storage).trials("s") if t.state == "running"]  # nobody closed it

    monkeypatch.setenv("DECONSTRUCT_HEARTBEAT_INTERVAL", "1")
    summary = cli.json("study", "run", slow_spec, "--storage", storage)
    assert summary["stop_reason"] == "done" and summary["counted"] == 4
    _each_configuration_completed_once(storage)
    trials = {t.number: t for t in Store(storage).trials("s")}
    assert trials[killed.number].state == "failed" and trials[killed.number].error.startswith("worker died")
    assert any(t.retry_of == killed.number and t.state == "completed" for t in trials.values())
    dead_runs = [r for r in Store(storage).runs("s") if r.trial_number == killed.number]
    assert dead_runs and all(r.status == "failed" and r.error.startswith("worker died") for r in dead_runs)


def test_sigint_exits_130_and_the_study_resumes(slow_spec, storage, tmp_path, cli):
    proc = _start(slow_spec, storage)
    _wait_for_training(proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err.strip().splitlines()[-1] and "run the same command" in err

    [stopped] = [t for t in Store(storage).trials("s") if t.state != "completed"]
    assert stopped.state == "failed" and stopped.error == "interrupted"
    runs = [r for r in Store(storage).runs("s") if r.trial_number == stopped.number]
    assert [(r.status, r.error) for r in runs] == [("failed", "interrupted")]
    assert Store(storage).curve(runs[0].id)  # the evaluations before Ctrl-C are kept

    summary = cli.json("study", "run", slow_spec, "--storage", storage)
    assert summary["stop_reason"] == "done" and summary["counted"] == 4
    _each_configuration_completed_once(storage)
    assert any(t.retry_of == stopped.number and t.state == "completed" for t in Store(storage).trials("s"))


def test_sigterm_is_handled_like_ctrl_c_and_exits_143(slow_spec, storage, cli):
    proc = _start(slow_spec, storage)
    _wait_for_training(proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 143, err
    assert "terminated" in err.strip().splitlines()[-1] and "run the same command" in err
    [stopped] = [t for t in Store(storage).trials("s") if t.state != "completed"]
    assert stopped.state == "failed" and stopped.error == "interrupted"  # not left running
    assert cli.json("study", "run", slow_spec, "--storage", storage)["counted"] == 4
    _each_configuration_completed_once(storage)


@pytest.mark.slow
def test_local_workers_share_a_study(slow_spec, storage, cli, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    result = cli("study", "run", slow_spec, "--storage", storage, "--workers", "2", "--format", "json")
    assert result.exit_code == 0, result.output
    assert "started 1 more worker(s)" in result.stderr
    _each_configuration_completed_once(storage)
    assert {t.pid for t in Store(storage).trials("s")} <= {os.getpid()} | {
        int(p) for p in result.stderr.split("pids [", 1)[1].split("]", 1)[0].split(",")}
