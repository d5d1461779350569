"""End-to-end studies through the CLI: a real SQLite file, real Optuna, real (tiny) trainings."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time

import optuna
import pytest

from deconstruct import __version__
from deconstruct.plugins import plugins_for
from deconstruct.spec import load_spec
from deconstruct.store import Store
from deconstruct.study import StudyRunner


def _optuna_trials(storage: str, name: str):
    return optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)


def test_grid_with_two_seeds_stores_every_run_and_rerun_adds_nothing(spec, any_storage, write, cli):
    storage = any_storage
    spec["search"] = {"model.mixer.kind": ["attention", "mlp"], "model.channel_mixer": ["mlp", "none"]}
    spec["train"]["seeds"] = [0, 1]
    path = write(spec)

    summary = cli.json("study", "run", path, "--storage", storage)
    assert summary["counted"] == 4 and summary["states"] == {"completed": 4} and summary["trained"] == 8
    assert summary["stop_reason"] == "done" and summary["best"]["number"] in range(4)

    store = Store(storage)
    runs = store.runs("s")
    assert len(runs) == 8 and all(r.status == "completed" for r in runs)
    assert sorted((r.trial_number, r.seed) for r in runs) == [(t, s) for t in range(4) for s in (0, 1)]
    assert len({r.config_hash for r in runs}) == 4
    curves = store.curves("s")
    for r in runs:  # what a report reads
        assert [st for st, _ in curves[r.id]["val_loss"]] == [2, 4]
        assert r.val_loss == curves[r.id]["val_loss"][-1][1]
        assert r.params > 0 and r.flops_per_token > 0 and r.tokens == 4 * 4 * 16 and r.steps == 4
        assert r.tokens_per_second > 0 and r.wall_seconds >= r.metrics["train_seconds"] > 0
        assert "bits_per_byte" in r.metrics and r.device == "cpu" and r.trial_state == "completed"
        if r.search_params["model.mixer.kind"] == "attention":  # no relaxed layer to skip
            assert r.metrics["skip_block_val_loss"] == r.val_loss
        else:  # every layer relaxed: skipping leaves embeddings → head
            assert r.metrics["skip_block_val_loss"] != r.val_loss
        assert r.versions["torch"] and r.versions["optuna"] == optuna.__version__
        # the plugins that provided this run's mixer, channel mixer and task, with their versions (issue 6)
        assert r.plugins == plugins_for(load_spec(path, [f"{k}={v}" for k, v in r.search_params.items()]))
        mixer = r.search_params["model.mixer.kind"]
        provider = {"attention": "deconstruct.builtin.attention", "mlp": "deconstruct.builtin.mlp_mixer"}[mixer]
        source = r.versions["deconstruct_source"]  # built-ins: the hash of deconstruct's own source files
        assert {"name": provider, "version": __version__, "source": source, "provides": [f"mixer:{mixer}"]} in r.plugins
        assert {"name": "deconstruct.builtin.tasks", "version": __version__, "source": source,
                "provides": ["task:lm"]} in r.plugins
        assert set(r.search_params) == {"model.mixer.kind", "model.channel_mixer"}
        assert r.config["layers"][0]["mixer"] == r.search_params["model.mixer.kind"]
    diagnostics = store.diagnostics("s")  # attention indicators: every attention run, none for the token-wise MLP
    for r in runs:
        names = {n for _, _, n, _ in diagnostics.get(r.id, [])}
        if r.search_params["model.mixer.kind"] == "attention":
            assert names >= {"entropy", "sink", "concentration", "local_0", "head_diversity"}
        else:
            assert not names
    for t in store.trials("s"):  # the trial value is the mean over its seeds
        mine = [r.val_loss for r in runs if r.trial_number == t.number]
        assert math.isclose(t.values[0], sum(mine) / 2, rel_tol=1e-9)

    again = cli.json("study", "run", path, "--storage", storage)
    assert again["trained"] == 0 and again["counted"] == 4
    assert len(store.runs("s")) == 8 and len(store.trials("s")) == 4 and len(_optuna_trials(storage, "s")) == 4


def test_changed_space_under_the_same_name_is_refused(spec, storage, write, cli):
    spec["search"] = {"model.mixer.kind": ["attention"]}
    assert cli("study", "run", write(spec), "--storage", storage).exit_code == 0
    spec["search"] = {"model.mixer.kind": ["attention", "mlp"]}
    result = cli("study", "run", write(spec), "--storage", storage)
    assert result.exit_code == 2
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("error: study 's'") and "different spec" in line
    assert 'search.model.mixer.kind: ["attention"] -> ["attention", "mlp"]' in line
    assert "--set name=" in line and "deconstruct study delete s" in line
    # a new name is a new study
    assert cli("study", "run", write(spec), "--storage", storage, "--set", "name=s2", "--n-trials", "1").exit_code == 0


def test_failing_trials_are_recorded_and_the_study_goes_on(spec, storage, write, cli):
    spec["search"] = {"train.lr": [3e-3, 1e9]}
    spec["train"]["grad_clip"] = 0.0
    result = cli("study", "run", write(spec), "--storage", storage, "--format", "json")
    summary = json.loads(result.stdout)
    assert summary["counted"] == 2 and summary["states"] == {"completed": 1, "failed": 1}
    # a study with failed trials exits non-zero, with one line counting them
    assert result.exit_code == 1
    [line] = [ln for ln in result.stderr.splitlines() if ln.startswith("error: ")]
    assert "1 of 2 trials of study s failed" in line and "non-finite" in line

    trials = {t.search_params["train.lr"]: t for t in Store(storage).trials("s")}
    assert trials[3e-3].state == "completed"
    assert "non-finite" in trials[1e9].error
    runs = Store(storage).runs("s")
    assert sorted(r.status for r in runs) == ["completed", "failed"]
    assert "non-finite" in next(r.error for r in runs if r.status == "failed")
    # failed trials count: a re-run retries nothing (same code, same machine) and still says they failed
    again = cli("study", "run", write(spec), "--storage", storage, "--format", "json")
    assert again.exit_code == 1 and json.loads(again.stdout)["trained"] == 0
    # --retry-failed retries it once (it fails again: the same learning rate diverges again)
    forced = cli("study", "run", write(spec), "--storage", storage, "--format", "json", "--retry-failed")
    diverged = trials[1e9].number
    assert forced.exit_code == 1 and f"retrying trial {diverged} (asked by --retry-failed)" in forced.stderr
    retry = [t for t in Store(storage).trials("s") if t.retry_of is not None]
    assert [(t.retry_of, t.state) for t in retry] == [(diverged, "failed")] and "non-finite" in retry[0].error
    assert len(Store(storage).runs("s", status="failed")) == 2  # trained again, and failed again


def test_a_store_failing_mid_trial_fails_that_trial_and_the_next_run_retries_it(spec, storage, write, cli, monkeypatch):
    """A write that fails mid-study (disk full, a server gone) fails the trial being written with the storage's
    one-line reason (never left running), the study goes on and exits 1 with one line; the next run retries
    that trial (its configuration was never judged) and nothing stored before is lost."""
    from deconstruct._errors import StorageError
    from deconstruct.store import _store

    spec["search"] = {"train.lr": [3e-3, 2e-3]}
    writes, real = [], _store.Store.add_metrics

    def failing_third_write(self, *args, **kwargs):
        writes.append(1)
        if len(writes) == 3:  # mid-way through the first trial's run
            raise StorageError(f"storage {storage}: disk I/O error")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(_store.Store, "add_metrics", failing_third_write)
    result = cli("study", "run", write(spec), "--storage", storage)
    assert result.exit_code == 1 and "Traceback" not in result.output
    [line] = [ln for ln in result.stderr.splitlines() if ln.startswith("error: ")]
    assert "1 of 2 trials of study s failed (storage fault: storage " in line
    trials = Store(storage).trials("s")
    assert [t.state for t in trials] == ["failed", "completed"]
    assert trials[0].error.startswith("storage fault: storage ") and "disk I/O error" in trials[0].error
    assert [r.status for r in Store(storage).runs("s")] == ["failed", "completed"]  # no run left running
    completed = Store(storage).runs("s", status="completed")

    monkeypatch.setattr(_store.Store, "add_metrics", real)  # the disk has room again
    again = cli("study", "run", write(spec), "--storage", storage)
    assert again.exit_code == 0, again.output
    assert f"retrying trial {trials[0].number} (the store failed under it)" in again.stderr
    retry = [t for t in Store(storage).trials("s") if t.retry_of is not None]
    assert [(t.retry_of, t.state) for t in retry] == [(trials[0].number, "completed")]
    kept = {r.id: r.val_loss for r in Store(storage).runs("s", status="completed")}
    assert all(kept[r.id] == r.val_loss for r in completed)  # what was stored is still there, unchanged


def test_a_failed_trial_is_retried_when_its_circumstances_changed(spec, storage, write, cli, monkeypatch):
    """A configuration that failed (here: a learning rate that diverges) is retried by the next study run
    when the code, plugins or environment changed since (here: simulated), and then counts as done."""
    import deconstruct._code

    spec["search"] = {"train.lr": [3e-3, 1e9]}
    spec["train"]["grad_clip"] = 0.0
    assert cli("study", "run", write(spec), "--storage", storage).exit_code == 1
    monkeypatch.setattr(deconstruct._code, "circumstances", lambda device=None: "another-machine")
    spec["train"]["grad_clip"] = 0.0
    result = cli("study", "run", write(spec), "--storage", storage)
    assert "(the code, plugins or environment changed)" in result.stderr
    assert len(Store(storage).runs("s", status="failed")) == 2  # the failed configuration trained again
    # under the same circumstances again: not retried
    cli("study", "run", write(spec), "--storage", storage)
    assert len(Store(storage).runs("s", status="failed")) == 2


def test_a_searched_value_that_gives_no_valid_spec_is_refused_before_anything_trains(spec, storage, write, cli):
    spec["search"] = {"model.heads": [2, 3], "train.lr": [3e-3, 1e-2]}
    result = cli("study", "run", write(spec), "--storage", storage)
    assert result.exit_code == 2
    assert "spec.yaml:" in result.output and "search.model.heads" in result.output and "the value 3" in result.output
    assert "divisible by heads" in result.output
    assert cli.json("study", "list", "--storage", storage) == []  # nothing was created, nothing trained


def test_list_show_delete(spec, storage, write, cli):
    spec["search"] = {"model.mixer.kind": ["attention", "mlp"]}
    cli.json("study", "run", write(spec), "--storage", storage)

    [row] = cli.json("study", "list", "--storage", storage)
    assert row["name"] == "s" and row["trials"] == {"completed": 2} and row["runs"] == 2
    assert row["objectives"] == ["val_loss"] and row["best"]["values"][0] > 0

    shown = cli.json("study", "show", "s", "--storage", storage)
    assert [t["state"] for t in shown["trials"]] == ["completed", "completed"]
    assert all(len(t["runs"]) == 1 for t in shown["trials"])
    best = shown["best"]
    assert best["values"][0] == min(t["values"][0] for t in shown["trials"])
    assert best["config"]["layers"][0]["mixer"] == best["params"]["model.mixer.kind"]
    table = cli("study", "show", "s", "--storage", storage)
    assert table.exit_code == 0 and "best: trial" in table.stdout

    missing = cli("study", "show", "nope", "--storage", storage)
    assert missing.exit_code == 2 and "no study named 'nope'" in missing.stderr and "studies there: s" in missing.stderr
    assert cli("study", "delete", "s", "--storage", storage, input="n\n").exit_code == 1  # declined
    assert cli("study", "delete", "s", "--storage", storage, "--yes").exit_code == 0
    assert cli.json("study", "list", "--storage", storage) == []
    assert optuna.get_all_study_names(storage) == []
    assert cli("study", "delete", "s", "--storage", storage, "--yes").exit_code == 2


def test_list_without_a_database_creates_none(tmp_path, cli):
    storage = f"sqlite:///{tmp_path / 'none.db'}"
    assert cli.json("study", "list", "--storage", storage) == []
    assert not (tmp_path / "none.db").exists()


def test_storage_from_environment(spec, tmp_path, write, cli, monkeypatch):
    storage = f"sqlite:///{tmp_path / 'env.db'}"
    monkeypatch.setenv("DECONSTRUCT_STORAGE", storage)
    cli.json("study", "run", write(spec))  # no search: the base configuration, one trial
    assert [s["name"] for s in cli.json("study", "list")] == ["s"]
    assert (tmp_path / "env.db").exists()


@pytest.mark.parametrize("sampler", ["grid", "bruteforce"])
def test_conditional_options_are_dropped_not_crashed_on(spec, storage, write, cli, sampler):
    # kv_heads is an option of attention only; mlp has no such option (not suggested for it)
    spec["search"] = {"model.mixer.kind": ["attention", "mlp"], "model.mixer.kv_heads": [1, 2]}
    spec["study"] = {"sampler": sampler}
    summary = cli.json("study", "run", write(spec), "--storage", storage)
    assert summary["stop_reason"] == "done" and summary["trained"] == 3  # 3 distinct configurations
    trials = Store(storage).trials("s")
    mlp = [t for t in trials if t.search_params["model.mixer.kind"] == "mlp"]
    assert mlp and all(t.inactive_params == ["model.mixer.kv_heads"] for t in mlp)
    assert all(t.state == "completed" for t in trials)


@pytest.mark.parametrize("sampler", ["nsga2", "tpe"])
def test_multi_objective(spec, storage, write, cli, sampler):
    spec["search"] = {"model.mixer.kind": ["attention", "mlp"]}
    spec["study"] = {"sampler": sampler, "objective": ["val_loss", "params"], "direction": ["minimize", "minimize"],
                     "n_trials": 3, "pruner": "median"}
    summary = cli.json("study", "run", write(spec), "--storage", storage)
    assert summary["counted"] == 3 and summary["best"] is None and summary["pareto"]
    assert summary["trained"] <= 2  # two configurations at most; a repeat reuses its runs
    for t in Store(storage).trials("s"):
        assert t.state == "completed" and len(t.values) == 2 and t.values[1] == int(t.values[1])
    assert len(optuna.load_study(study_name="s", storage=storage).best_trials) >= 1


def test_random_sampler_with_a_range_and_hyperband_pruning(spec, storage, write, cli):
    spec["search"] = {"train.lr": {"low": 1e-4, "high": 1e-1, "log": True}, "model.layers": {"low": 1, "high": 2}}
    spec["train"]["steps"] = 6
    spec["study"] = {"sampler": "random", "pruner": "hyperband", "n_trials": 4}
    summary = cli.json("study", "run", write(spec), "--storage", storage)
    assert summary["counted"] == 4
    for t in Store(storage).trials("s"):
        assert t.state in ("completed", "pruned")
        assert isinstance(t.search_params["model.layers"], int) and 1e-4 <= t.search_params["train.lr"] <= 1e-1
    # intermediate values went to Optuna at the evaluation steps
    assert all(set(t.intermediate_values) <= {2, 4, 6} and t.intermediate_values
               for t in _optuna_trials(storage, "s"))


def test_n_trials_counts_toward_a_total(spec, storage, write, cli):
    spec["search"] = {"model.mixer.kind": ["attention", "mlp"], "model.channel_mixer": ["mlp", "none"]}
    path = write(spec)
    assert cli.json("study", "run", path, "--storage", storage, "--n-trials", "1")["counted"] == 1
    assert cli.json("study", "run", path, "--storage", storage, "--n-trials", "1")["trained"] == 0
    assert cli.json("study", "run", path, "--storage", storage, "--n-trials", "3")["counted"] == 3
    assert cli.json("study", "run", path, "--storage", storage, "--timeout", "0")["stop_reason"] == "timeout"
    # another worker joins from the spec stored in the database and finishes the grid
    assert cli.json("study", "worker", "s", "--storage", storage)["counted"] == 4  # the grid size
    assert cli.json("study", "run", path, "--storage", storage)["trained"] == 0


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.parametrize("where", ["this host", "elsewhere"])
def test_a_dead_workers_trial_is_detected_and_retried(spec, any_storage, where):
    """A trial left RUNNING by a killed worker: found by its gone process (this host) or by its stale
    heartbeat (another host), marked failed with its runs, and its configuration retried once."""
    from deconstruct.study._recovery import HOST

    storage = any_storage
    spec["search"] = {"model.mixer.kind": ["attention", "mlp"]}
    runner = StudyRunner(spec, storage=storage, heartbeat_interval=1, grace_period=1)
    # play a worker that starts trial 0 and dies in the middle of its first run
    with pytest.warns(UserWarning):
        trial = runner.study.ask()
    sample = runner.space.sample(trial, runner.base)
    trial.set_user_attr("host", HOST if where == "this host" else "elsewhere")
    trial.set_user_attr("pid", _dead_pid())
    runner.optuna_storage.record_heartbeat(trial._trial_id)
    runner.rows.start_trial(trial.number, search_params=sample.params)
    run_id = runner.rows.add_run(trial.number, 0, config_hash="x", config={}, search_params=sample.params)
    runner.store.add_metrics(run_id, [(2, "val_loss", 5.5)])
    if where == "elsewhere":
        time.sleep(2.2)  # SQLite's clock has whole seconds: be sure the heartbeat is older than the grace period

    summary = runner.run()
    assert summary.stop_reason == "done" and summary.trained == 2
    trials = Store(storage).trials("s")
    assert trials[0].state == "failed" and trials[0].error.startswith("worker died")
    completed = [t for t in trials if t.state == "completed"]
    assert sorted(t.search_params["model.mixer.kind"] for t in completed) == ["attention", "mlp"]
    assert any(t.retry_of == 0 for t in completed)
    dead = Store(storage).get_run(run_id)
    assert dead.status == "failed" and dead.error.startswith("worker died")
    assert Store(storage).curve(run_id) == [(2, 5.5)]  # its curve up to the kill is kept
    states = [t.state for t in _optuna_trials(storage, "s")]
    assert states.count(optuna.trial.TrialState.COMPLETE) == 2 and states[0] == optuna.trial.TrialState.FAIL


def test_spec_errors_are_one_line_before_any_trial(spec, storage, write, cli):
    spec["search"] = {"model.mixer.kv_head": [1, 2]}
    result = cli("study", "run", write(spec), "--storage", storage)
    assert result.exit_code == 2 and "did you mean 'kv_heads'?" in result.stderr
    spec["search"] = {"train.lr": {"low": 1e-4, "high": 1e-2}}  # grid over a continuous range
    result = cli("study", "run", write(spec), "--storage", storage)
    assert result.exit_code == 2 and "need a finite space" in result.stderr
    spec["study"] = {"objective": "val_losss", "sampler": "tpe"}
    result = cli("study", "run", write(spec), "--storage", storage)
    assert result.exit_code == 2 and "unknown objective 'val_losss'" in result.stderr
    assert not os.path.exists(storage.removeprefix("sqlite:///")) or not Store(storage).studies()


def test_median_pruning_prunes_a_clearly_worse_trial(spec, storage, write, cli):
    # Optuna's MedianPruner(n_startup_trials=3, n_warmup_steps=0): once 3 trials completed, a trial whose value
    # at an evaluation is worse than the completed trials' median there is pruned. Four learning rates that
    # learn and two that barely move (val_loss stays near ln 256 ≈ 5.5); the grid order is fixed (GridSampler
    # seed 0): 2e-7 is trial 0 and 1e-7 the last trial, which runs after learning trials and is pruned at its
    # first evaluation. (A learning trial can be pruned too: at step 2, after warm-up, they are close.)
    spec["search"] = {"train.lr": [1e-2, 5e-3, 3e-3, 2e-3, 1e-7, 2e-7]}
    spec["train"].update(steps=8, eval_every=2, seeds=[0])
    spec["study"] = {"sampler": "grid", "pruner": "median"}
    summary = cli.json("study", "run", write(spec), "--storage", storage)
    assert summary["counted"] == 6 and summary["stop_reason"] == "done"
    trials = Store(storage).trials("s")
    described = [(t.number, t.state, t.search_params, t.error) for t in trials]
    pruned = [t for t in trials if t.state == "pruned"]
    assert summary["states"].get("pruned") == len(pruned)
    assert any(t.search_params["train.lr"] < 1e-6 for t in pruned), described  # a stuck one was pruned
    assert all(t.number >= 3 for t in pruned), described  # never before three trials completed
    runs = {r.trial_number: r for r in Store(storage).runs("s")}
    for t in pruned:
        run = runs[t.number]
        assert run.status == "pruned" and run.trial_state == "pruned" and run.val_loss is None
        assert run.error and run.error.startswith("pruned at step ") and " of seed 0 (mean val_loss " in run.error
        assert t.error == run.error
    for t in trials:  # a stuck learning rate is never better than a learning one
        if t.state == "completed" and t.search_params["train.lr"] < 1e-6:
            assert t.values[0] > max(u.values[0] for u in trials if u.state == "completed" and u.search_params["train.lr"] > 1e-3)
    states = {o.number: o.state for o in _optuna_trials(storage, "s")}
    assert all(states[t.number] == optuna.trial.TrialState.PRUNED for t in pruned)


def test_a_task_metric_is_an_objective_only_for_the_tasks_whose_runs_carry_it(spec, storage, write, cli):
    spec["study"] = {"objective": "accuracy", "direction": "maximize"}
    result = cli("study", "run", write(spec), "--storage", storage)  # lm runs carry no accuracy
    assert result.exit_code == 2 and "unknown objective 'accuracy'" in result.stderr and "bits_per_byte" in result.stderr
    spec["task"] = {"name": "mqar", "seq_len": 32, "num_pairs": 4, "vocab": 64}
    summary = cli.json("study", "run", write(spec), "--storage", storage)
    [run] = Store(storage).runs("s")
    assert summary["states"] == {"completed": 1} and 0.0 <= run.metrics["accuracy"] <= 1.0
    assert summary["best"]["values"] == [run.metrics["accuracy"]]
