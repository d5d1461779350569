"""The study runner: Optuna over the spec's search space, every trial and run recorded in the store.

How a study proceeds (DESIGN.md, "Studies"):

- **Trials and seeds.** Each trial is one configuration; it trains once per seed of ``train.seeds``
  (replicates) and its value is the mean over seeds of each objective. Each seed's run is a ``dc_run`` row with
  its resolved config, cost, versions and plugins; its evaluations are ``dc_metric`` rows, written as they
  happen (a killed run keeps its curve up to the last evaluation).
- **Pruning.** Only for single-objective studies (Optuna does not prune multi-objective ones). Seeds run one
  after the other; while seed ``k`` (0-based position in ``train.seeds``) trains, its evaluation at step ``s``
  is reported to Optuna at step ``k·S + s`` (``S`` = training steps) with the value *the running mean over
  seeds 0…k of the validation loss at step s*. Trials are thus compared on the same seeds at the same point,
  and a configuration can be pruned during any seed.
- **Reuse.** A completed run is reused for any later trial with the same configuration (resolved-config
  hash) and seed, so a configuration is never trained twice for a seed; a trial whose seeds are all stored
  trains nothing, and one whose (configuration, seed) another worker is training right now waits for that
  run and reuses it. A configuration that failed for a reason of its own (non-finite loss, invalid spec, an
  exception) fails again at once, with the first failure's reason.
- **Failures.** A trial that raises or goes non-finite is recorded failed with its reason and the study goes
  on. Ctrl-C records the running trial and run as failed with reason ``interrupted`` and re-raises
  KeyboardInterrupt (the CLI exits 130). A worker killed outright is found by Optuna's heartbeat, or at once
  when it ran on this host and its process is gone; its trial and runs are marked failed (``worker died``).
  Interrupted and dead trials are retried (a dead one at most ``MAX_DEATHS`` times): see ``_recovery``.
- **When a study stops** (``--n-trials`` counts towards a total across invocations): a trial *counts* when it
  completed, was pruned, or failed for a reason of its own; interrupted and dead trials do not count (their
  retry does; see ``_recovery.study_status``). The study stops when the counted trials reach the target
  (``--n-trials``, else ``study.n_trials``, else the grid size for grid/bruteforce, else 20), when every
  distinct configuration of a grid/bruteforce space has counted, or after ``--timeout`` seconds (no new trial
  starts after it). Trials running in other workers are waited for (they finish, or die and are retried), so
  one command always ends with a finished study. Running the same command again continues the study.
- **A changed spec** (task, model, train, search, objectives or directions differ from the study's) under the
  same name is refused; sampler, pruner, n_trials and timeout may change between invocations.
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
from typing import Any

from deconstruct._errors import StorageError
from deconstruct.store import INTERRUPTED, STORAGE_FAULT, RunInfo, Store, StudyInfo, display_url, is_retryable
from deconstruct.study import _optuna
from deconstruct.study._attrs import publish_metrics
from deconstruct.study._check import check_objectives
from deconstruct.study._events import (
    StudyError,
    StudyEvents,
    StudySummary,
    TrialFailed,
    TrialOutcome,
    one_line,
)
from deconstruct.study._match import Matcher, match_space
from deconstruct.study._pareto import best_record, best_trial, pareto_trials
from deconstruct.study._recovery import HOST, Recovery, Stop, StudyStatus, study_status
from deconstruct.study._space import SearchSpace, normalize
from deconstruct.study._spec import check_same_study, read_spec, spec_hash, spec_identity

DEFAULT_N_TRIALS = 20
HEARTBEAT_INTERVAL = 30  #: seconds between heartbeats ($DECONSTRUCT_HEARTBEAT_INTERVAL)
GRACE_PERIOD = 120  #: seconds without heartbeat after which a trial's worker is dead ($DECONSTRUCT_GRACE_PERIOD)


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


# -- the runner -------------------------------------------------------------------------------------------
class _RunCallback:
    """A training callback for one (trial, seed) run: stores evaluations, reports to Optuna, prunes."""

    def __init__(self, runner: StudyRunner, trial: Any, run_id: int, k: int, steps: int, prior: list[dict[int, float]], seed: int):
        self.runner, self.trial, self.run_id, self.k, self.steps, self.prior, self.seed = runner, trial, run_id, k, steps, prior, seed
        self.curve: dict[int, float] = {}
        self.last_beat = time.monotonic()

    def on_start(self, info: dict[str, Any]) -> None:
        self.runner.events.on_run_start(self.trial.number, self.seed, info)
        if "resumed_from" in info:  # a checkpoint of this (configuration, seed): its curve so far counts here too
            self.runner.events.on_note(f"trial {self.trial.number} seed {self.seed}: resumed from the checkpoint "
                                       f"at step {info['resumed_from']}")
            for step, name, value in info["history"]:
                if name == "val_loss":
                    self.curve[step] = float(value)
                    self.runner.report(self.trial, self.k, self.steps, step, float(value), self.prior, self.seed)

    def on_step(self, step: int, loss: float, tokens_per_second: float) -> None:
        self.runner.events.on_step(step, loss, tokens_per_second)
        if time.monotonic() - self.last_beat > 30:
            self.runner.store.heartbeat(self.run_id)
            self.last_beat = time.monotonic()

    def on_eval(self, step: int, metrics: dict[str, float]) -> None:
        self.runner.store.add_metrics(self.run_id, [(step, k, v) for k, v in metrics.items()])
        self.last_beat = time.monotonic()
        self.curve[step] = float(metrics["val_loss"])
        self.runner.events.on_eval(step, metrics)
        self.runner.report(self.trial, self.k, self.steps, step, self.curve[step], self.prior, self.seed)


class StudyRunner:
    """Runs (or joins) the study described by spec ``data`` against ``storage``.

    ``data`` is raw spec data (after ``--set``), ``spec_text`` the YAML as written (stored for reference).
    ``n_trials``/``timeout`` override the spec's ``study`` section. ``events`` receives progress.
    """

    def __init__(
        self,
        data: dict[str, Any],
        spec_text: str = "",
        *,
        storage: str | None = None,
        n_trials: int | None = None,
        timeout: float | None = None,
        events: StudyEvents | None = None,
        heartbeat_interval: int | None = None,
        grace_period: int | None = None,
        device: str | None = None,
        checkpoint_root: str | None = None,
        retry: str = "changed",
    ):

        from deconstruct.plugins import get_registry
        from deconstruct.spec import load_spec

        self.events = events or StudyEvents()
        self.registry = get_registry()  # what resolution (spec and search space) looks names up in
        self.base = normalize(copy.deepcopy(data))
        resolved = load_spec(self.base, registry=self.registry)
        self.spec = resolved.spec
        self.name = self.spec.name
        self.device = device
        self._checkpoint_root = checkpoint_root
        # failed trials to retry at the start: "changed" (the circumstances changed), "all" (--retry-failed),
        # "none" (a `study worker`: the command that started the study decides)
        self.retry = retry
        self.space = SearchSpace(self.spec, self.registry)
        self.objectives = self.spec.study.objectives
        self.directions = self.spec.study.directions
        self.seeds = list(self.spec.train.seeds)
        # the paper's "skip" evaluation (relaxed layers removed, no retraining) costs a few evaluation batches:
        # every run records it as metrics["skip_block_val_loss"], so a report can use it as an objective or column
        self.skip_relaxed = True
        self._tasks: dict[str, Any] = {}
        self._check_objectives(resolved)
        from deconstruct._code import circumstances

        self.circumstances = circumstances(device)  # code + plugins + environment, stored with each trial

        finite = self.spec.study.sampler in ("grid", "bruteforce")
        size = self.space.grid_size() if finite else None
        if finite:
            self.space.grid_space()  # a range without step: one clear line now
        self.target = int(n_trials or self.spec.study.n_trials or size or DEFAULT_N_TRIALS)
        self.timeout = timeout if timeout is not None else self.spec.study.timeout
        self.points = self.space.points(self.base) if finite else None
        # parameter matching (study.match): every configuration resolved through the matcher; a finite space
        # is matched in full now, so an unmatchable configuration stops the study before anything trains
        match = self.spec.study.match
        self.matcher = Matcher(match.params, match.tolerance, self.base, lambda d: load_spec(d, registry=self.registry))
        if finite and match.params != "none":
            match_space(self.space, self.base, self.matcher)

        # the store: refuse a changed spec under an existing name
        self.store = Store(storage)
        self.url = self.store.url
        identity = spec_identity(self.spec)
        digest = spec_hash(identity)
        existing = self.store.get_study(self.name)
        if existing is not None:
            check_same_study(existing, identity, display_url(self.url))
        import torch

        from deconstruct import __version__

        self.info: StudyInfo = self.store.create_study(
            self.name, spec_text=spec_text, spec_hash=digest, spec_json=self.base, objectives=self.objectives,
            directions=self.directions, deconstruct_version=__version__, torch_version=torch.__version__,
        )
        self.rows = self.store.for_study(self.info.id)  # this study's trial and run rows
        self.resumed = existing is not None
        from deconstruct._code import run_versions

        self.versions = run_versions()  # the code behind every run (its plugins: see plugins_for)

        # Optuna: same database, heartbeats on
        hb = heartbeat_interval or int(os.environ.get("DECONSTRUCT_HEARTBEAT_INTERVAL") or HEARTBEAT_INTERVAL)
        self.grace = grace_period or int(os.environ.get("DECONSTRUCT_GRACE_PERIOD") or 4 * hb)
        self.recovery = Recovery(self.name, self.rows, self.grace)
        self.optuna_storage = _optuna.optuna_storage(self.url, heartbeat_interval=hb, grace_period=self.grace,
                                                     on_stale=self.recovery.on_stale)
        steps = self._steps(resolved)
        self.multi = len(self.objectives) > 1
        if self.multi and self.spec.study.pruner != "none":
            self.events.on_note("pruning is off: Optuna does not prune multi-objective studies")
        self.study = _optuna.open_study(
            self.name, self.optuna_storage, directions=self.directions, where=display_url(self.url),
            sampler=_optuna.make_sampler(self.spec.study.sampler, self.space, self.target),
            pruner=_optuna.make_pruner(self.spec.study.pruner, min(self.spec.train.eval_every, steps), steps * len(self.seeds)),
        )
        self.trained = 0
        self.interrupted: int | None = None  # the trial Ctrl-C stopped

    # -- set-up helpers -------------------------------------------------------------------------------
    @staticmethod
    def _steps(resolved: Any) -> int:
        from deconstruct.train import total_steps

        return total_steps(resolved)

    def _task(self, resolved: Any) -> Any:
        from deconstruct.train import build_task

        key = json.dumps([resolved.spec.task.name, resolved.task_options.model_dump(mode="json")], sort_keys=True)
        if key not in self._tasks:
            self._tasks[key] = build_task(resolved)
        return self._tasks[key]

    def _check_objectives(self, resolved: Any) -> None:
        """Every objective is a metric the task's runs carry (:mod:`deconstruct.metrics`); the task is built
        once here, so a task that cannot be built stops the study before any trial."""
        self._task(resolved)
        check_objectives(resolved.spec.task.name, self.objectives)

    # -- the loop ---------------------------------------------------------------------------------------
    def run(self) -> StudySummary:
        """Run trials until the study is done (see the module docstring); KeyboardInterrupt propagates after
        the running trial was recorded as interrupted."""
        start = time.monotonic()
        status = self._status()
        self.events.on_study_start({
            "name": self.name, "storage": display_url(self.url), "target": self.target, "done": status.counted,
            "sampler": self.spec.study.sampler, "pruner": self.spec.study.pruner, "resumed": self.resumed,
            "configurations": len(self.points) if self.points is not None else None, "seeds": self.seeds,
            "objectives": self.objectives, "directions": self.directions,
        })
        stop, stalled = Stop.done, 0
        self.recovery.retry_failures(self.study, self.circumstances, self.retry, self.events.on_note)
        while True:
            self.recovery.sweep(self.study)
            status = self._status()
            if status.finished:
                stop = status.why
                break
            if self.timeout is not None and time.monotonic() - start >= self.timeout:
                stop = Stop.timeout
                break
            if not status.work:
                self.events.on_wait(status.running)
                time.sleep(self._poll_seconds())
                continue
            if self.points is not None and stalled > len(self.points) + 3:
                self.events.on_note("the sampler keeps proposing configurations that are done; stopping")
                stop = Stop.stalled
                break
            before = len(status.done_points)
            _optuna.optimize_once(self.study, self._objective, catch=(TrialFailed,))
            if self.points is not None:
                stalled = 0 if len(self._status().done_points) > before else stalled + 1
        return self.summary(stop.value, time.monotonic() - start)

    def summary(self, stop_reason: str = "done", seconds: float = 0.0) -> StudySummary:
        trials = self.rows.trials()
        states: dict[str, int] = {}
        for t in trials:
            states[t.state] = states.get(t.state, 0) + 1
        out = StudySummary(
            name=self.name, storage=display_url(self.url), objectives=self.objectives, directions=self.directions,
            target=self.target, counted=self._status().counted, states=states, stop_reason=stop_reason,
            trained=self.trained, seconds=seconds,
        )
        if self.multi:
            out.pareto = [{"number": t.number, "values": t.values, "params": t.search_params} for t in pareto_trials(trials, self.directions)]
        else:
            out.best = best_record(trials, self.directions)
        return out

    def _status(self) -> StudyStatus:
        return study_status(self.study.get_trials(deepcopy=False), self.target, self.points)

    def _poll_seconds(self) -> float:
        """How long to wait before looking again at trials running in other workers."""
        return min(5.0, max(0.5, self.grace / 4))

    # -- one trial ----------------------------------------------------------------------------------------
    def _objective(self, trial: Any) -> float | list[float]:
        import optuna

        number = trial.number
        params: dict[str, Any] = {}
        try:
            trial.set_user_attr("host", HOST)
            trial.set_user_attr("pid", os.getpid())
            trial.set_user_attr("circumstances", self.circumstances)
            frozen = next((t for t in self.study.get_trials(deepcopy=False) if t.number == number), None)
            retry_of = frozen.system_attrs.get("failed_trial") if frozen is not None else None
            self.rows.start_trial(number, search_params={}, retry_of=retry_of, host=HOST, pid=os.getpid())
            sample = self.space.sample(trial, self.base)
            params = sample.params
            self.rows.update_trial(number, search_params=sample.params, inactive_params=sample.inactive)
            self.events.on_trial_start(number, sample.params, sample.inactive)
            values, reused = self._evaluate(trial, sample)
        except optuna.TrialPruned as exc:
            self.rows.finish_trial(number, "pruned", error=str(exc) or "pruned")
            self._trial_end(number, "pruned", None, params, str(exc) or "pruned", [])
            raise
        except KeyboardInterrupt:
            self.interrupted = number
            self.rows.fail_running(number, INTERRUPTED)
            trial.set_user_attr("fail_reason", INTERRUPTED)
            raise
        except StudyError as exc:  # the study stops; the configuration was not judged: retry it next time
            reason = f"{INTERRUPTED} ({exc})"
            self.rows.fail_running(number, reason)
            trial.set_user_attr("fail_reason", reason)
            raise
        except Exception as exc:  # a StorageError mid-trial is the store's fault: retried on the next run
            reason = f"{STORAGE_FAULT}: {one_line(exc)}" if isinstance(exc, StorageError) else one_line(exc)
            self.rows.fail_running(number, reason)
            self.rows.finish_trial(number, "failed", error=reason)
            trial.set_user_attr("fail_reason", reason)
            self._trial_end(number, "failed", None, params, reason, [])
            raise TrialFailed(reason) from exc
        self.rows.finish_trial(number, "completed", values=values, reused=reused)
        self._trial_end(number, "completed", values, sample.params, None, reused)
        return values if self.multi else values[0]

    def _trial_end(self, number: int, state: str, values: list[float] | None, params: dict[str, Any], error: str | None, reused: list[int]) -> None:
        best = None
        if not self.multi:
            b = best_trial(self.rows.trials(), self.directions)
            best = b.values if b is not None else None
        # this trial is not yet told to Optuna: count it by hand
        done = self._status().counted + (0 if state == "failed" and error and is_retryable(error) else 1)
        self.events.on_trial_end(TrialOutcome(number, state, values, params, error, reused, min(done, self.target), self.target, best))

    def _evaluate(self, trial: Any, sample: Any) -> tuple[list[float], list[int]]:
        from deconstruct._code import code_key
        from deconstruct.plugins import plugins_for

        # SpecError: the trial fails with its reason; a searched option that does not apply is dropped
        resolved, effective = self.space.resolve(self.base, sample, lambda d: self.matcher(d).resolved)
        if effective is not sample:
            dropped = [p for p in effective.inactive if p not in sample.inactive]
            self.events.on_note(f"trial {trial.number}: {', '.join(dropped)} does not apply to this configuration; left at its default")
            sample.params.clear()
            sample.params.update(effective.params)
            sample.inactive[:] = effective.inactive
            self.rows.update_trial(trial.number, search_params=sample.params, inactive_params=sample.inactive)
        key = resolved.config_hash()
        trial.set_user_attr("config_hash", key)
        self.rows.update_trial(trial.number, config_hash=key)
        steps = self._steps(resolved)
        runs: list[RunInfo] = []
        curves: list[dict[int, float]] = []
        reused: list[int] = []
        code = code_key(self.versions, plugins_for(resolved))  # a stored run is reused only if the same code made it
        for k, seed in enumerate(self.seeds):
            self._wait_for_twin(key, seed, trial.number)
            retried = _optuna.retried(self.study.get_trials(deepcopy=False))  # failures being retried
            earlier = self.rows.failed_config(key, exclude=retried)
            if earlier is not None and earlier.number != trial.number:
                raise TrialFailed(f"same configuration as trial {earlier.number}, which failed: {earlier.error}")
            stored = self.rows.completed_runs(key)
            if seed in stored and code_key(stored[seed].versions, stored[seed].plugins) != code:
                self.events.on_note(f"trial {trial.number} seed {seed}: run {stored[seed].id} of this configuration "
                                    "was made by other code (a plugin or deconstruct changed); training it again")
                del stored[seed]
            if seed in stored:
                run = stored[seed]
                curve = dict(self.store.curve(run.id, "val_loss"))
                reused.append(seed)
                self.events.on_run_end(trial.number, seed, "reused", None)
                for step in sorted(curve):
                    self.report(trial, k, steps, step, curve[step], curves, seed)
            else:
                run, curve = self._train(trial, resolved, sample, seed, k, steps, curves)
            runs.append(run)
            curves.append(curve)
        values = []
        for name in self.objectives:
            measured = [run.value(name) for run in runs]
            if any(v is None for v in measured):
                raise StudyError(f"objective {name!r} was not measured by run {runs[0].id}; choose another objective")
            values.append(_mean([float(v) for v in measured]))  # type: ignore[arg-type]
        if not all(math.isfinite(v) for v in values):
            raise TrialFailed(f"non-finite objective values {values}")
        publish_metrics(trial, runs)  # Optuna's tools (optuna-dashboard) show every measured metric
        return values, reused

    def _wait_for_twin(self, key: str, seed: int, number: int) -> None:
        """Another worker is training this very (configuration, seed): wait for it, then reuse its run (or
        train it here if that worker died)."""
        while (twin := self.rows.running_twin(key, seed, number)) is not None:
            self.events.on_wait([twin.trial_number])
            time.sleep(self._poll_seconds())
            self.recovery.sweep(self.study)  # a dead twin is closed (and its trial retried) here

    def report(self, trial: Any, k: int, steps: int, step: int, value: float, prior: list[dict[int, float]], seed: int) -> None:
        """Report the running mean over seeds at ``step`` to Optuna (single objective) and prune if told."""
        import optuna

        if self.multi:
            return
        vals = [c[step] for c in prior if step in c] + [value]
        trial.report(_mean(vals), k * steps + step)
        if trial.should_prune():
            raise optuna.TrialPruned(f"pruned at step {step} of seed {seed} (mean val_loss {_mean(vals):.4f})")

    def _train(self, trial: Any, resolved: Any, sample: Any, seed: int, k: int, steps: int,
               prior: list[dict[int, float]]) -> tuple[RunInfo, dict[int, float]]:
        import optuna

        from deconstruct.plugins import plugins_for
        from deconstruct.train import train

        task = self._task(resolved)
        checkpoints = None
        if resolved.spec.train.checkpoint_every:  # one directory per (configuration, seed): a retry resumes from it
            from deconstruct.train import checkpoint_root, run_directory

            root = self._checkpoint_root or checkpoint_root(self.url)
            checkpoints = str(run_directory(root, self.name, resolved.config_hash(), seed))
        run_id = self.rows.add_run(
            trial.number, seed, config_hash=resolved.config_hash(), config=resolved.config(),
            search_params=sample.params, versions={**self.versions, "data": getattr(task, "data_identity", None)},
            plugins=plugins_for(resolved), host=HOST,
            checkpoint_dir=checkpoints,
        )
        callback = _RunCallback(self, trial, run_id, k, steps, prior, seed)
        tick = time.perf_counter()
        try:
            result = train(resolved, seed=seed, callback=callback, task=task, skip_relaxed=self.skip_relaxed,
                           device=self.device, checkpoint_dir=checkpoints)
        except optuna.TrialPruned as exc:
            self.store.finish_run(run_id, "pruned", error=str(exc), wall_seconds=time.perf_counter() - tick)
            self.events.on_run_end(trial.number, seed, "pruned", str(exc))
            raise
        except KeyboardInterrupt:
            self.store.finish_run(run_id, "failed", error=INTERRUPTED, wall_seconds=time.perf_counter() - tick)
            raise
        except Exception as exc:
            self.store.finish_run(run_id, "failed", error=one_line(exc), wall_seconds=time.perf_counter() - tick)
            self.events.on_run_end(trial.number, seed, "failed", one_line(exc))
            raise
        wall = time.perf_counter() - tick
        self.store.add_metrics(run_id, result.history)
        self.store.add_diagnostics(run_id, result.diagnostics)
        self.store.finish_run(run_id, "completed", result=result, wall_seconds=wall)
        self.trained += 1
        self.events.on_run_end(trial.number, seed, "completed", None)
        return self.store.get_run(run_id), dict(callback.curve) or {result.steps: result.val_loss}


# -- entry points ---------------------------------------------------------------------------------------
def run_study(
    spec: str | dict[str, Any],
    *,
    overrides: list[str] | tuple[str, ...] = (),
    storage: str | None = None,
    n_trials: int | None = None,
    timeout: float | None = None,
    events: StudyEvents | None = None,
    **kwargs: Any,
) -> StudySummary:
    """Run (or continue) the study of a spec file or spec data; see the module docstring."""
    if isinstance(spec, dict):
        from deconstruct.spec import apply_override

        data, text = copy.deepcopy(spec), ""
        for assignment in overrides:
            apply_override(data, assignment)
    else:
        data, text = read_spec(str(spec), overrides)
    runner = StudyRunner(data, text, storage=storage, n_trials=n_trials, timeout=timeout, events=events, **kwargs)
    return runner.run()


def join_study(name: str, *, storage: str | None = None, n_trials: int | None = None, timeout: float | None = None,
               events: StudyEvents | None = None, **kwargs: Any) -> StudySummary:
    """Join an existing study as one more worker, from the spec stored with it (``study worker``)."""
    store = Store(storage, create=False)
    info = store.study(name)
    kwargs.setdefault("retry", "none")  # the command that started the study decides what to retry
    runner = StudyRunner(info.spec, info.spec_text, storage=store.url, n_trials=n_trials, timeout=timeout,
                         events=events, **kwargs)
    return runner.run()


def delete_study(name: str, *, storage: str | None = None) -> bool:
    """Delete a study: its ``dc_`` rows and its Optuna study. False when neither existed."""
    import optuna

    store = Store(storage, create=False)
    found = store.delete_study(name)
    ostorage = _optuna.optuna_storage(store.url)
    try:
        optuna.delete_study(study_name=name, storage=ostorage)
        found = True
    except KeyError:
        pass
    return found
