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
  KeyboardInterrupt (the CLI exits 130). A worker killed outright is found by Optuna's heartbeat (RDBStorage
  ``heartbeat_interval``/``grace_period``, :class:`~optuna.storages.RetryHeartbeatStaleTrialCallback`), or at
  once when it ran on this host and its process is gone; its trial and runs are marked failed
  (``worker died``). Interrupted and dead trials are retried (a dead one at most :data:`MAX_DEATHS` times).
- **When a study stops** (``--n-trials`` counts towards a total across invocations): a trial *counts* when it
  completed, was pruned, or failed for a reason of its own; interrupted and dead trials do not count (their
  retry does). The study stops when the counted trials reach the target (``--n-trials``, else
  ``study.n_trials``, else the grid size for grid/bruteforce, else 20), when every distinct configuration of a
  grid/bruteforce space has counted, or after ``--timeout`` seconds (no new trial starts after it). Trials
  running in other workers are waited for (they finish, or die and are retried), so one command always ends
  with a finished study. Running the same command again continues the study.
- **A changed spec** (task, model, train, search, objectives or directions differ from the study's) under the
  same name is refused; sampler, pruner, n_trials and timeout may change between invocations.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import platform
import socket
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from deconstruct import metrics
from deconstruct._errors import DeconstructError, SpecError
from deconstruct.store import (
    INTERRUPTED,
    WORKER_DIED,
    RunInfo,
    Store,
    StudyInfo,
    TrialInfo,
    display_url,
    is_retryable,
    sqlite_path,
)
from deconstruct.study._match import Matcher, match_space
from deconstruct.study._space import SearchSpace, canonical, normalize

DEFAULT_N_TRIALS = 20
MAX_DEATHS = 3  #: a configuration whose worker died this many times is failed for good (OOM-killed?)
HEARTBEAT_INTERVAL = 30  #: seconds between heartbeats ($DECONSTRUCT_HEARTBEAT_INTERVAL)
GRACE_PERIOD = 120  #: seconds without heartbeat after which a trial's worker is dead ($DECONSTRUCT_GRACE_PERIOD)
HOST = socket.gethostname()



class StudyError(DeconstructError):
    """A study that cannot run as asked (a changed spec, an unknown objective, …): one line, exit 2."""


class TrialFailed(Exception):
    """Raised out of the objective so that Optuna records FAIL and the study goes on."""


# -- events (the CLI's progress display implements these; every method is optional) ---------------------
class StudyEvents:
    """Hooks the runner calls; subclass and override what you need. Raising stops the study."""

    def on_study_start(self, info: dict[str, Any]) -> None: ...
    def on_trial_start(self, number: int, params: dict[str, Any], inactive: list[str]) -> None: ...
    def on_run_start(self, number: int, seed: int, info: dict[str, Any]) -> None: ...
    def on_step(self, step: int, loss: float, tokens_per_second: float) -> None: ...
    def on_eval(self, step: int, metrics: dict[str, float]) -> None: ...
    def on_run_end(self, number: int, seed: int, status: str, error: str | None) -> None: ...
    def on_trial_end(self, outcome: TrialOutcome) -> None: ...
    def on_wait(self, running: list[int]) -> None: ...
    def on_note(self, message: str) -> None: ...


@dataclass
class TrialOutcome:
    number: int
    state: str  # completed | failed | pruned
    values: list[float] | None
    params: dict[str, Any]
    error: str | None
    reused: list[int]  # seeds whose stored run was reused
    done: int  # counted trials so far (including this one)
    total: int  # the target
    best: list[float] | None  # best values so far (single objective) — None when multi-objective


@dataclass
class StudySummary:
    name: str
    storage: str
    objectives: list[str]
    directions: list[str]
    target: int
    counted: int
    states: dict[str, int]
    stop_reason: str  # done | n_trials | timeout | stalled
    best: dict[str, Any] | None = None  # single objective: {number, values, params, config_hash}
    pareto: list[dict[str, Any]] = field(default_factory=list)  # multi-objective: the non-dominated trials
    trained: int = 0  # runs trained by this invocation
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


# -- the spec of a study ----------------------------------------------------------------------------------
def read_spec(path: str, overrides: list[str] | tuple[str, ...] = ()) -> tuple[dict[str, Any], str]:
    """The raw spec data of a file after ``--set`` overrides (validated, with line-numbered errors), and its
    text. This data, not the file, is what the study stores and every trial starts from."""
    from pathlib import Path

    from deconstruct.spec import apply_override, load_spec
    from deconstruct.spec._yaml import read_yaml_file

    load_spec(path, overrides)  # validate the base configuration, with file/line errors
    data, _, text = read_yaml_file(path)
    for assignment in overrides:
        apply_override(data, assignment)
    data.setdefault("name", Path(path).stem)
    return data, text


def spec_identity(spec: Any) -> dict[str, Any]:
    """What makes a study the same study: everything but the study's name, sampler, pruner and budget."""
    d = spec.model_dump(mode="json", exclude_defaults=True, include={"task", "model", "train", "search"})
    if spec.study.match.params != "none":  # matched and unmatched are different studies (different models)
        d["match"] = spec.study.match.model_dump(mode="json")
    d["objectives"] = spec.study.objectives
    d["directions"] = spec.study.directions
    return d


def spec_hash(identity: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict) and d:
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): d}


def describe_change(old: dict[str, Any], new: dict[str, Any], limit: int = 3) -> str:
    """``search.model.layout: ['uniform', 'hybrid'] -> ['uniform']; …`` (the first few differences)."""
    a, b = _flatten(old), _flatten(new)
    parts = []
    for key in sorted(set(a) | set(b)):
        if a.get(key, "∅") != b.get(key, "∅"):
            before = json.dumps(a[key]) if key in a else "(absent)"
            after = json.dumps(b[key]) if key in b else "(absent)"
            parts.append(f"{key}: {before} -> {after}")
    more = f"; and {len(parts) - limit} more" if len(parts) > limit else ""
    return "; ".join(parts[:limit]) + more


def one_line(exc: BaseException) -> str:
    """An exception as the one line a trial records."""
    if isinstance(exc, (DeconstructError, TrialFailed)):
        return str(exc)
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _pid_alive(pid: int) -> bool:
    if os.name != "posix":
        return True  # cannot tell: leave it to the heartbeat
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


def _better(a: float, b: float, direction: str) -> bool:
    return a < b if direction == "minimize" else a > b


def pareto_front(trials: list[TrialInfo], directions: list[str]) -> list[TrialInfo]:
    """The completed trials no other completed trial dominates."""
    done = [t for t in trials if t.state == "completed" and t.values]
    sign = [1.0 if d == "minimize" else -1.0 for d in directions]

    def dominates(x: list[float], y: list[float]) -> bool:
        xs = [s * v for s, v in zip(sign, x, strict=True)]
        ys = [s * v for s, v in zip(sign, y, strict=True)]
        return all(a <= b for a, b in zip(xs, ys, strict=True)) and any(a < b for a, b in zip(xs, ys, strict=True))

    return [t for t in done if not any(dominates(o.values, t.values) for o in done if o is not t)]  # type: ignore[arg-type]


def best_trial(trials: list[TrialInfo], directions: list[str]) -> TrialInfo | None:
    """The best completed trial of a single-objective study."""
    best = None
    for t in trials:
        if t.state == "completed" and t.values and (best is None or _better(t.values[0], best.values[0], directions[0])):  # type: ignore[index]
            best = t
    return best


# -- Optuna pieces ----------------------------------------------------------------------------------------
def optuna_storage(url: str, *, heartbeat_interval: int | None = None, grace_period: int | None = None,
                   on_stale: Callable[[Any, Any], None] | None = None) -> Any:
    """An RDBStorage on ``url`` with heartbeats (so a killed worker's trial is detected and retried)."""
    import inspect

    import optuna

    kwargs: dict[str, Any] = {}
    if sqlite_path(url) is not None or url.startswith("sqlite"):
        from deconstruct.store._store import BUSY_TIMEOUT_S

        kwargs["engine_kwargs"] = {"connect_args": {"timeout": BUSY_TIMEOUT_S}}
    if heartbeat_interval:
        kwargs["heartbeat_interval"] = int(heartbeat_interval)
        kwargs["grace_period"] = int(grace_period or 2 * heartbeat_interval)
        if on_stale is not None:  # renamed in Optuna 4.9 (failed_trial_callback is its deprecated alias)
            params = inspect.signature(optuna.storages.RDBStorage.__init__).parameters
            name = "heartbeat_stale_trial_callback" if "heartbeat_stale_trial_callback" in params else "failed_trial_callback"
            kwargs[name] = on_stale
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(url, **kwargs)


def _retry_callback() -> Any:
    """Optuna's RetryHeartbeatStaleTrialCallback (RetryFailedTrialCallback before 4.9): queue a WAITING copy
    of a failed trial (same params, grid id; ``retry_history`` grows). The copy does not inherit the dead
    worker's host, pid and failure reason."""
    import optuna

    base = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None) or optuna.storages.RetryFailedTrialCallback

    class Retry(base):  # type: ignore[misc, valid-type]
        def __call__(self, study: Any, trial: Any) -> None:
            trial = copy.deepcopy(trial)
            trial.user_attrs = {k: v for k, v in trial.user_attrs.items() if k not in ("host", "pid", "fail_reason")}
            super().__call__(study, trial)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Retry()


def make_sampler(name: str, space: SearchSpace, target: int) -> Any:
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if name == "grid":
            return optuna.samplers.GridSampler(space.grid_space(), seed=0)
        if name == "bruteforce":
            space.grid_space()  # a clear error for a range without step
            return optuna.samplers.BruteForceSampler()
        if name == "tpe":
            return optuna.samplers.TPESampler()
        if name == "random":
            return optuna.samplers.RandomSampler()
        if name == "nsga2":
            return optuna.samplers.NSGAIISampler(population_size=max(2, min(50, target // 2)))
    raise StudyError(f"unknown sampler {name!r}")


def make_pruner(name: str, first_eval: int, max_step: int) -> Any:
    """median: Optuna's MedianPruner after 3 trials; hyperband: resources from the first evaluation to the
    last step of the last seed; none."""
    import optuna

    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=max(1, first_eval), max_resource=max(max_step, first_eval + 1))
    return optuna.pruners.NopPruner()


# -- the runner -------------------------------------------------------------------------------------------
class _RunCallback:
    """A training callback for one (trial, seed) run: stores evaluations, reports to Optuna, prunes."""

    def __init__(self, runner: StudyRunner, trial: Any, run_id: int, k: int, steps: int, prior: list[dict[int, float]], seed: int):
        self.runner, self.trial, self.run_id, self.k, self.steps, self.prior, self.seed = runner, trial, run_id, k, steps, prior, seed
        self.curve: dict[int, float] = {}
        self.last_beat = time.monotonic()

    def on_start(self, info: dict[str, Any]) -> None:
        self.runner.events.on_run_start(self.trial.number, self.seed, info)

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
    ):
        import optuna

        from deconstruct.plugins import get_registry
        from deconstruct.spec import load_spec

        self.events = events or StudyEvents()
        self.registry = get_registry()  # what resolution (spec and search space) looks names up in
        self.base = normalize(copy.deepcopy(data))
        resolved = load_spec(self.base, registry=self.registry)
        self.spec = resolved.spec
        self.name = self.spec.name
        self.device = device
        self.space = SearchSpace(self.spec, self.registry)
        self.objectives = self.spec.study.objectives
        self.directions = self.spec.study.directions
        self.seeds = list(self.spec.train.seeds)
        # the paper's "skip" evaluation (relaxed layers removed, no retraining) costs a few evaluation batches:
        # every run records it as metrics["skip_block_val_loss"], so a report can use it as an objective or column
        self.skip_relaxed = True
        self._tasks: dict[str, Any] = {}
        self._check_objectives(resolved)

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
        if existing is not None and existing.spec_hash != digest:
            try:
                from deconstruct.spec import Spec

                before = spec_identity(Spec.model_validate(normalize(copy.deepcopy(existing.spec))))
                what = describe_change(before, identity)
            except Exception:
                what = "its spec hash differs"
            raise StudyError(
                f"study {self.name!r} in {display_url(self.url)} was created from a different spec ({what}); "
                f"give this one a new name (name: … in the spec, or --set name=NEW) "
                f"or delete the old study with `deconstruct study delete {self.name}`"
            )
        import torch

        from deconstruct import __version__

        self.info: StudyInfo = self.store.create_study(
            self.name, spec_text=spec_text, spec_hash=digest, spec_json=self.base, objectives=self.objectives,
            directions=self.directions, deconstruct_version=__version__, torch_version=torch.__version__,
        )
        self.resumed = existing is not None
        self.versions = {"python": platform.python_version(), "torch": torch.__version__, "deconstruct": __version__,
                         "optuna": optuna.__version__}

        # Optuna: same database, heartbeats on
        hb = heartbeat_interval or int(os.environ.get("DECONSTRUCT_HEARTBEAT_INTERVAL") or HEARTBEAT_INTERVAL)
        self.grace = grace_period or int(os.environ.get("DECONSTRUCT_GRACE_PERIOD") or 4 * hb)
        self.optuna_storage = optuna_storage(self.url, heartbeat_interval=hb, grace_period=self.grace, on_stale=self._on_stale)
        t = self.spec.train
        steps = self._steps(resolved)
        self.multi = len(self.objectives) > 1
        if self.multi and self.spec.study.pruner != "none":
            self.events.on_note("pruning is off: Optuna does not prune multi-objective studies")
        try:
            self.study = optuna.create_study(
                storage=self.optuna_storage,
                sampler=make_sampler(self.spec.study.sampler, self.space, self.target),
                pruner=make_pruner(self.spec.study.pruner, min(t.eval_every, steps), steps * len(self.seeds)),
                study_name=self.name,
                directions=self.directions,
                load_if_exists=True,
            )
        except ValueError as exc:  # an Optuna study of this name with other directions
            raise StudyError(f"the Optuna study {self.name!r} in {display_url(self.url)} does not match the spec: {exc}") from None
        if [d.name.lower() for d in self.study.directions] != self.directions:
            raise StudyError(
                f"the Optuna study {self.name!r} in {display_url(self.url)} optimizes "
                f"{[d.name.lower() for d in self.study.directions]}, the spec {self.directions}; use another name"
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
        measured = {n for m in metrics.measured(resolved.spec.task.name) for n in (m.name, *m.aliases)}
        for name in self.objectives:
            if name not in measured:
                raise SpecError(f"unknown objective {name!r}", path="study.objective",
                                hint=f"measured: {', '.join(sorted(measured))}")

    # -- the loop ---------------------------------------------------------------------------------------
    def run(self) -> StudySummary:
        """Run trials until the study is done (see the module docstring); KeyboardInterrupt propagates after
        the running trial was recorded as interrupted."""
        import optuna

        start = time.monotonic()
        status = self._status()
        self.events.on_study_start({
            "name": self.name, "storage": display_url(self.url), "target": self.target, "done": status["counted"],
            "sampler": self.spec.study.sampler, "pruner": self.spec.study.pruner, "resumed": self.resumed,
            "configurations": len(self.points) if self.points is not None else None, "seeds": self.seeds,
            "objectives": self.objectives, "directions": self.directions,
        })
        stop_reason, stalled = "done", 0
        while True:
            self._housekeeping()
            status = self._status()
            if status["finished"]:
                stop_reason = status["why"]
                break
            if self.timeout is not None and time.monotonic() - start >= self.timeout:
                stop_reason = "timeout"
                break
            if not status["work"]:
                self.events.on_wait(status["running"])
                time.sleep(min(5.0, max(0.5, self.grace / 4)))
                continue
            if self.points is not None and stalled > len(self.points) + 3:
                self.events.on_note("the sampler keeps proposing configurations that are done; stopping")
                stop_reason = "stalled"
                break
            before = len(status["done_points"])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                warnings.filterwarnings("ignore", category=UserWarning, module=r"optuna(\.|$)")
                self.study.optimize(self._objective, n_trials=1, catch=(TrialFailed,))
            if self.points is not None:
                stalled = 0 if len(self._status()["done_points"]) > before else stalled + 1
        return self.summary(stop_reason, time.monotonic() - start)

    def summary(self, stop_reason: str = "done", seconds: float = 0.0) -> StudySummary:
        trials = self.store.trial_rows(self.info.id)
        states: dict[str, int] = {}
        for t in trials:
            states[t.state] = states.get(t.state, 0) + 1
        out = StudySummary(
            name=self.name, storage=display_url(self.url), objectives=self.objectives, directions=self.directions,
            target=self.target, counted=self._status()["counted"], states=states, stop_reason=stop_reason,
            trained=self.trained, seconds=seconds,
        )
        if self.multi:
            out.pareto = [{"number": t.number, "values": t.values, "params": t.search_params} for t in pareto_front(trials, self.directions)]
        else:
            b = best_trial(trials, self.directions)
            if b is not None:
                out.best = {"number": b.number, "values": b.values, "params": b.search_params, "config_hash": b.config_hash}
        return out

    def _status(self) -> dict[str, Any]:
        """Counted trials, running ones, done configurations; whether there is work or the study is done."""
        from optuna.trial import TrialState

        trials = self.study.get_trials(deepcopy=False)
        retried = {n for t in trials for n in t.system_attrs.get("retry_history", [])}
        counted, running, waiting, done_points, running_points = 0, [], [], set(), set()
        for t in trials:
            if t.state == TrialState.RUNNING:
                running.append(t.number)
                running_points.add(canonical(t.params))
            elif t.state == TrialState.WAITING:
                waiting.append(t)
            elif t.state in (TrialState.COMPLETE, TrialState.PRUNED) or (
                t.state == TrialState.FAIL and not self._retryable(t) and t.number not in retried
            ):
                counted += 1
                done_points.add(canonical(t.params))
        status: dict[str, Any] = {"counted": counted, "running": running, "done_points": done_points,
                                  "finished": False, "work": True, "why": "done"}
        if self.points is None or not self.points <= done_points:
            status["why"] = "n_trials"
        if counted >= self.target:
            status.update(finished=not running, work=False)
        elif self.points is not None:
            remaining = self.points - done_points
            if not remaining:
                status.update(finished=not running, work=False)
            elif remaining <= running_points and not any(canonical(w.params) in remaining for w in waiting):
                status.update(work=False)
        elif counted + len(running) >= self.target:
            status.update(work=False)
        if not status["work"] and not running:
            status["finished"] = True
        return status

    @staticmethod
    def _retryable(t: Any) -> bool:
        reason = t.user_attrs.get("fail_reason")
        if reason is not None and reason.startswith(INTERRUPTED):
            return True
        if reason is None or reason.startswith(WORKER_DIED):
            return len(t.system_attrs.get("retry_history", [])) < MAX_DEATHS
        return False

    def _housekeeping(self) -> None:
        """Find dead workers (heartbeat, or a gone process on this host), close their rows, queue retries."""
        import optuna
        from optuna.trial import TrialState

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(self.study)  # calls _on_stale for each
        trials = self.study.get_trials(deepcopy=False)
        now = datetime.now()
        for t in trials:
            if t.state != TrialState.RUNNING:
                continue
            pid, host = t.user_attrs.get("pid"), t.user_attrs.get("host")
            if host == HOST and pid and pid != os.getpid() and not _pid_alive(int(pid)):
                reason = f"{WORKER_DIED} (process {pid} on {host} is gone)"
            elif pid is None and t.datetime_start and (now - t.datetime_start).total_seconds() > 2 * self.grace:
                reason = f"{WORKER_DIED} (it never started its trial)"  # killed between ask and its first heartbeat
            else:
                continue
            try:
                self.study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
            except Exception:
                continue
            self.store.fail_running(self.info.id, t.number, reason)
        # rows of trials Optuna has finished but whose worker never closed them
        states = {t.number: t.state for t in self.study.get_trials(deepcopy=False)}
        for row in self.store.trial_rows(self.info.id):
            if row.state == "running" and states.get(row.number, TrialState.RUNNING) != TrialState.RUNNING:
                self.store.fail_running(self.info.id, row.number, f"{WORKER_DIED} (no heartbeat for {self.grace} s)")
        for run in self.store.running_runs(self.info.id):
            if states.get(run.trial_number, TrialState.RUNNING) != TrialState.RUNNING:
                self.store.fail_running(self.info.id, run.trial_number, WORKER_DIED)
        # retries of interrupted and dead trials (the heartbeat callback already queued some)
        trials = self.study.get_trials(deepcopy=False)
        retried = {n for t in trials for n in t.system_attrs.get("retry_history", [])}
        for t in trials:
            if t.state == TrialState.FAIL and t.number not in retried and self._retryable(t):
                _retry_callback()(self.study, t)

    def _on_stale(self, study: Any, trial: Any) -> None:
        """Optuna found ``trial`` without heartbeat and failed it: close its rows and queue a retry."""
        if study.study_name != self.name:
            return
        self.store.fail_running(self.info.id, trial.number, f"{WORKER_DIED} (no heartbeat for {self.grace} s)")
        if len(trial.system_attrs.get("retry_history", [])) < MAX_DEATHS:
            _retry_callback()(study, trial)

    # -- one trial ----------------------------------------------------------------------------------------
    def _objective(self, trial: Any) -> float | list[float]:
        import optuna

        number = trial.number
        params: dict[str, Any] = {}
        try:
            trial.set_user_attr("host", HOST)
            trial.set_user_attr("pid", os.getpid())
            frozen = next((t for t in self.study.get_trials(deepcopy=False) if t.number == number), None)
            retry_of = frozen.system_attrs.get("failed_trial") if frozen is not None else None
            self.store.start_trial(self.info.id, number, search_params={}, retry_of=retry_of, host=HOST, pid=os.getpid())
            sample = self.space.sample(trial, self.base)
            params = sample.params
            self.store.update_trial(self.info.id, number, search_params=sample.params, inactive_params=sample.inactive)
            self.events.on_trial_start(number, sample.params, sample.inactive)
            values, reused = self._evaluate(trial, sample)
        except optuna.TrialPruned as exc:
            self.store.finish_trial(self.info.id, number, "pruned", error=str(exc) or "pruned")
            self._trial_end(number, "pruned", None, params, str(exc) or "pruned", [])
            raise
        except KeyboardInterrupt:
            self.interrupted = number
            self.store.fail_running(self.info.id, number, INTERRUPTED)
            trial.set_user_attr("fail_reason", INTERRUPTED)
            raise
        except StudyError as exc:  # the study stops; the configuration was not judged: retry it next time
            reason = f"{INTERRUPTED} ({exc})"
            self.store.fail_running(self.info.id, number, reason)
            trial.set_user_attr("fail_reason", reason)
            raise
        except Exception as exc:
            reason = one_line(exc)
            self.store.fail_running(self.info.id, number, reason)
            self.store.finish_trial(self.info.id, number, "failed", error=reason)
            trial.set_user_attr("fail_reason", reason)
            self._trial_end(number, "failed", None, params, reason, [])
            raise TrialFailed(reason) from exc
        self.store.finish_trial(self.info.id, number, "completed", values=values, reused=reused)
        self._trial_end(number, "completed", values, sample.params, None, reused)
        return values if self.multi else values[0]

    def _trial_end(self, number: int, state: str, values: list[float] | None, params: dict[str, Any], error: str | None, reused: list[int]) -> None:
        best = None
        if not self.multi:
            b = best_trial(self.store.trial_rows(self.info.id), self.directions)
            best = b.values if b is not None else None
        # this trial is not yet told to Optuna: count it by hand
        done = self._status()["counted"] + (0 if state == "failed" and error and is_retryable(error) else 1)
        self.events.on_trial_end(TrialOutcome(number, state, values, params, error, reused, min(done, self.target), self.target, best))

    def _evaluate(self, trial: Any, sample: Any) -> tuple[list[float], list[int]]:

        # SpecError: the trial fails with its reason; a searched option that does not apply is dropped
        resolved, effective = self.space.resolve(self.base, sample, lambda d: self.matcher(d).resolved)
        if effective is not sample:
            dropped = [p for p in effective.inactive if p not in sample.inactive]
            self.events.on_note(f"trial {trial.number}: {', '.join(dropped)} does not apply to this configuration; left at its default")
            sample.params.clear()
            sample.params.update(effective.params)
            sample.inactive[:] = effective.inactive
            self.store.update_trial(self.info.id, trial.number, search_params=sample.params, inactive_params=sample.inactive)
        key = resolved.config_hash()
        trial.set_user_attr("config_hash", key)
        self.store.update_trial(self.info.id, trial.number, config_hash=key)
        steps = self._steps(resolved)
        runs: list[RunInfo] = []
        curves: list[dict[int, float]] = []
        reused: list[int] = []
        for k, seed in enumerate(self.seeds):
            self._wait_for_twin(key, seed, trial.number)
            earlier = self.store.failed_config(self.info.id, key)
            if earlier is not None and earlier.number != trial.number:
                raise TrialFailed(f"same configuration as trial {earlier.number}, which failed: {earlier.error}")
            stored = self.store.completed_runs(self.info.id, key)
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
        return values, reused

    def _wait_for_twin(self, key: str, seed: int, number: int) -> None:
        """Another worker is training this very (configuration, seed): wait for it, then reuse its run (or
        train it here if that worker died)."""
        while (twin := self.store.running_twin(self.info.id, key, seed, number)) is not None:
            self.events.on_wait([twin.trial_number])
            time.sleep(min(5.0, max(0.5, self.grace / 4)))
            self._housekeeping()  # a dead twin is closed (and its trial retried) here

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
        run_id = self.store.add_run(
            self.info.id, trial.number, seed, config_hash=resolved.config_hash(), config=resolved.config(),
            search_params=sample.params, versions=self.versions, plugins=plugins_for(resolved), host=HOST,
        )
        callback = _RunCallback(self, trial, run_id, k, steps, prior, seed)
        tick = time.perf_counter()
        try:
            result = train(resolved, seed=seed, callback=callback, task=task, skip_relaxed=self.skip_relaxed,
                           device=self.device)
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
    runner = StudyRunner(info.spec, info.spec_text, storage=store.url, n_trials=n_trials, timeout=timeout,
                         events=events, **kwargs)
    return runner.run()


def delete_study(name: str, *, storage: str | None = None) -> bool:
    """Delete a study: its ``dc_`` rows and its Optuna study. False when neither existed."""
    import optuna

    store = Store(storage, create=False)
    found = store.delete_study(name)
    ostorage = optuna_storage(store.url)
    try:
        optuna.delete_study(study_name=name, storage=ostorage)
        found = True
    except KeyError:
        pass
    return found
