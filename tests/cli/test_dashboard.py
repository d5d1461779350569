"""``deconstruct dashboard NAME``: optuna-dashboard serves the study from the same storage; its API returns
the trials with their validation curves (intermediate values) and deconstruct's metrics (user attributes)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

pytest.importorskip("optuna_dashboard")

SPEC = {
    "name": "dash",
    "task": {"name": "lm", "corpus": "stdlib", "seq_len": 16, "max_bytes": 200_000},
    "model": {"d_model": 16, "layers": 1, "heads": 2},
    "train": {"steps": 4, "batch_size": 4, "eval_every": 2, "eval_batches": 1, "seeds": [0]},
    "search": {"model.channel_mixer": ["mlp", "none"]},
    "study": {"sampler": "grid"},
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_the_dashboard_serves_the_trials(tmp_path):
    from deconstruct.study import run_study

    storage = f"sqlite:///{tmp_path / 'dash.db'}"
    run_study(SPEC, storage=storage)
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "deconstruct", "dashboard", "dash", "--storage", storage,
                             "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        url = proc.stdout.readline().strip()  # printed before the server starts
        assert url.startswith(f"http://localhost:{port}/dashboard/studies/"), url + proc.stderr.read()[-2000:]
        study_id = int(url.rsplit("/", 1)[1])
        deadline = time.monotonic() + 120
        while not _listening(port):  # wait on the server being up, not on a fixed time
            assert proc.poll() is None, proc.stderr.read()[-2000:]
            assert time.monotonic() < deadline, "the dashboard did not start listening"
            time.sleep(0.2)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies/{study_id}", timeout=60) as r:
            detail = json.loads(r.read())
    finally:  # the test is about serving; a server slow to stop on a loaded machine is killed
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=60)
    trials = detail["trials"]
    assert len(trials) == 2 and {t["state"] for t in trials} == {"Complete"}
    for t in trials:
        assert [v["step"] for v in t["intermediate_values"]] == [2, 4]  # the validation curve
        attrs = {a["key"]: a["value"] for a in t["user_attrs"]}
        assert {"bits_per_byte", "params", "tokens_per_second"} <= set(attrs)
        assert float(attrs["val_loss"]) == pytest.approx(t["values"][0])


def test_an_unknown_study_is_one_line(tmp_path):
    from typer.testing import CliRunner

    from deconstruct.cli import build_app
    from deconstruct.store import Store

    storage = f"sqlite:///{tmp_path / 'x.db'}"
    Store(storage)
    result = CliRunner().invoke(build_app(), ["dashboard", "nope", "--storage", storage])
    assert result.exit_code == 2 and "no study named 'nope'" in result.stderr
