"""``study submit`` through submitit: the sbatch script it would submit (written without Slurm), a study
completed by local jobs (every configuration once), and a job preempted mid-run that saves its checkpoint,
requeues, and resumes the run to the uninterrupted result."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

pytest.importorskip("submitit")

from deconstruct.study._submit import SubmitError, parse_slurm  # noqa: E402


def test_slurm_options_become_submitit_parameters():
    assert parse_slurm("partition=gpu,gpus_per_node=4,time=04:00:00") == {
        "partition": "gpu", "gpus_per_node": 4, "time": 240}
    assert parse_slurm("time=1-00:00:00")["time"] == 1440
    assert parse_slurm("time=90, cpus-per-task=8") == {"time": 90, "cpus_per_task": 8}
    with pytest.raises(SubmitError, match="not a submitit Slurm parameter; valid: .*partition"):
        parse_slurm("partiton=gpu")
    with pytest.raises(SubmitError, match="not a Slurm time"):
        parse_slurm("time=four hours")


def test_the_sbatch_script_without_slurm(spec, write, cli, tmp_path):
    path = write(spec)
    result = cli("study", "submit", path, "--slurm", "partition=gpu,gpus_per_node=4,time=04:00:00", "--jobs", "16",
                 "--folder", tmp_path / "jobs", "--dry-run")
    assert result.exit_code == 0, result.output
    script = result.stdout
    assert script.startswith("#!/bin/bash")
    for line in ("#SBATCH --partition=gpu", "#SBATCH --gpus-per-node=4", "#SBATCH --time=240",
                 "#SBATCH --array=0-15%16", "#SBATCH --signal=USR2@90"):  # the signal submitit requeues on
        assert line in script.splitlines(), line
    assert "submitit.core._submit" in script and str(tmp_path / "jobs") in script
    assert not (tmp_path / "deconstruct.db").exists()  # a dry run creates nothing

    bad = cli("study", "submit", path, "--slurm", "gpus=4", "--dry-run")
    assert bad.exit_code == 2 and "not a submitit Slurm parameter" in bad.stderr


def test_local_jobs_complete_every_configuration_once(spec, write, cli, storage, tmp_path):
    spec["search"] = {"model.channel_mixer": ["mlp", "none"], "model.d_model": [16, 32]}
    result = cli("study", "submit", write(spec), "--cluster", "local", "--jobs", "2", "--storage", storage,
                 "--folder", tmp_path / "jobs", "--wait")
    assert result.exit_code == 0, result.output
    jobs = json.loads(result.stdout)
    assert len(jobs) == 2 and all("summary" in j for j in jobs), jobs
    from deconstruct.store import Store

    store = Store(storage)
    done = {json.dumps(t.search_params, sort_keys=True) for t in store.trials("s") if t.state == "completed"}
    assert done == {json.dumps({"model.channel_mixer": c, "model.d_model": d}, sort_keys=True)
                    for c in ("mlp", "none") for d in (16, 32)}  # every configuration (a twin trial may reuse one)
    runs = store.runs("s", status="completed")
    assert len({r.config_hash for r in runs}) == len(runs) == 4  # no configuration trained twice


def test_a_preempted_job_saves_requeues_and_resumes(spec, storage, tmp_path):
    from deconstruct.spec import load_spec
    from deconstruct.store import Store
    from deconstruct.study import StudyRunner
    from deconstruct.study._submit import submit_study
    from deconstruct.train import train

    spec["train"].update(steps=1500, eval_every=500, checkpoint_every=1000)
    StudyRunner(spec, storage=storage, checkpoint_root=str(tmp_path / "ckpt"))
    [job] = submit_study("s", storage, jobs=1, cluster="local", folder=tmp_path / "jobs",
                         checkpoint_root=str(tmp_path / "ckpt"))
    store = Store(storage)
    deadline = time.monotonic() + 300
    while not (runs := store.runs("s")) or runs[0].status != "running" or not store.curve(runs[0].id):
        assert time.monotonic() < deadline and job.state not in ("FINISHED", "INTERRUPTED"), job.stderr()
        time.sleep(0.1)  # waiting for the first evaluation row (step 500) of the job's run
    trial = store.trials("s")[0]
    os.kill(trial.pid, signal.SIGUSR2)  # what Slurm sends before preemption (submitit's --signal=USR2@90)

    summary = job.result()  # the requeued job finishes the study
    assert summary["states"] == {"failed": 1, "completed": 1}
    first, retry = store.trials("s")
    assert first.error == "interrupted" and retry.retry_of == first.number
    log = job.stderr() or ""
    assert "preempted at step" in log and "resumed from the checkpoint at step" in log, log[-3000:]
    [done] = store.runs("s", status="completed")
    assert done.val_loss == train(load_spec(spec), seed=0).val_loss  # identical to an uninterrupted run
