"""``deconstruct study run|worker|list|show|delete``: Optuna studies over a spec, kept in one database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from deconstruct.cli._common import (
    DeviceOption,
    NprocOption,
    SetOption,
    TableFormat,
    data_parallel,
    end_data_parallel,
    print_json,
    stderr,
    stdout,
)
from deconstruct.cli._workers import _params, _spawn_workers, _wait_workers, _WorkerWatch

study_app = typer.Typer(help="Run, inspect and delete studies (Optuna searches over a spec).", no_args_is_help=True)

STORAGE_HELP = "SQLAlchemy URL of the study database (default: $DECONSTRUCT_STORAGE, else sqlite:///deconstruct.db)."
StorageOption = typer.Option(None, "--storage", help=STORAGE_HELP, metavar="URL")
NTrialsOption = typer.Option(
    None, "--n-trials", min=1, help="Total trials the study should count (across runs); default: spec, else the grid size."
)
TimeoutOption = typer.Option(None, "--timeout", min=0.0, help="Start no new trial after this many seconds.")
CheckpointOption = typer.Option(
    None, "--checkpoint-dir", metavar="DIR",
    help="Root of the runs' checkpoints (with train.checkpoint_every; default: $DECONSTRUCT_CHECKPOINTS, else "
    "`checkpoints` beside a SQLite database, else ./checkpoints). Workers on several machines need shared storage.",
)


def _fmt(values: list[float] | None) -> str:
    if not values:
        return "—"
    return ", ".join(f"{v:.4f}" if abs(v) < 1e4 else f"{v:,.0f}" for v in values)


class StudyProgress:
    """Study progress on stderr: a bar of counted trials with the best value, a bar for the current run, and
    one line per finished trial (printed even when stderr is not a terminal)."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        from deconstruct.cli._progress import _force

        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}", markup=False),
            TimeElapsedColumn(),
            console=stderr,
            disable=not stderr.is_terminal and not _force(),
        )
        self.study_task: Any = None
        self.run_task: Any = None
        self.objectives: list[str] = ["val_loss"]
        self.val = "—"
        self.plain: Any = None  # PlainProgress of the current run when stderr is not a terminal
        # a worker started by `--workers` (DECONSTRUCT_PROGRESS=0) logs to a file the parent reads: no lines
        import os

        self.quiet = os.environ.get("DECONSTRUCT_PROGRESS") == "0"

    def __enter__(self) -> StudyProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)

    def print(self, text: str) -> None:
        self.progress.console.print(text, highlight=False, markup=False, soft_wrap=True)

    # -- StudyEvents --------------------------------------------------------------------------------------
    def on_study_start(self, info: dict[str, Any]) -> None:
        self.objectives = info["objectives"]
        what = f"{info['configurations']} configurations" if info.get("configurations") else info["sampler"]
        verb = "continuing" if info["resumed"] else "starting"
        self.print(f"{verb} study {info['name']} ({what}, seeds {info['seeds']}, "
                   f"{info['done']}/{info['target']} trials done) in {info['storage']}")
        self.study_task = self.progress.add_task("trials", total=info["target"], completed=info["done"], detail="")

    def on_trial_start(self, number: int, params: dict[str, Any], inactive: list[str]) -> None:
        self.number, self.params = number, params

    def on_run_start(self, number: int, seed: int, info: dict[str, Any]) -> None:
        if self.progress.disable and not self.quiet:  # a log file or a cluster job: plain lines, periodically
            from deconstruct.cli._progress import PlainProgress

            self.plain = PlainProgress(f"trial {number} seed {seed}")
            self.plain.on_start(info)
            return
        if self.run_task is not None:
            self.progress.remove_task(self.run_task)
        self.val = "—"
        self.run_task = self.progress.add_task(f"trial {number} seed {seed}", total=info["steps"], detail="")

    def on_step(self, step: int, loss: float, tokens_per_second: float) -> None:
        if self.plain is not None:
            self.plain.on_step(step, loss, tokens_per_second)
        if self.run_task is not None:
            self.progress.update(self.run_task, completed=step,
                                 detail=f"loss {loss:.3f} val {self.val} {tokens_per_second:,.0f} tok/s")

    def on_eval(self, step: int, metrics: dict[str, float]) -> None:
        self.val = f"{metrics['val_loss']:.3f}"
        if self.plain is not None:
            self.plain.on_eval(step, metrics)

    def on_run_end(self, number: int, seed: int, status: str, error: str | None) -> None:
        self.plain = None
        if self.run_task is not None:
            self.progress.remove_task(self.run_task)
            self.run_task = None

    def on_trial_end(self, o: Any) -> None:
        if o.state == "completed":
            shown = ", ".join(f"{n}={v:.4g}" for n, v in zip(self.objectives, o.values or [], strict=True))
            state = f"completed {shown}" + (f" (seeds {o.reused} reused)" if o.reused else "")
        else:
            state = f"{o.state}: {o.error}"
        self.print(f"trial {o.number} [{o.done}/{o.total}] {_params(o.params)} — {state}")
        best = f"best {_fmt(o.best)}" if o.best else ""
        self.progress.update(self.study_task, completed=o.done, detail=best)

    def on_wait(self, running: list[int]) -> None:
        self.progress.update(self.study_task, detail=f"waiting for trial(s) {running} running elsewhere")

    def on_note(self, message: str) -> None:
        self.print(f"note: {message}")


def _print_summary(summary: Any, format: TableFormat) -> None:
    if format == TableFormat.json:
        print_json(summary.to_dict())
        return
    states = ", ".join(f"{n} {s}" for s, n in sorted(summary.states.items())) or "no trials"
    stdout.print(f"study {summary.name}: {summary.counted}/{summary.target} trials counted ({states}); "
                 f"{summary.trained} runs trained now; stopped: {summary.stop_reason}", highlight=False, soft_wrap=True)
    if summary.best:
        b = summary.best
        stdout.print(f"best: trial {b['number']} {summary.objectives[0]}={_fmt(b['values'])} — {_params(b['params'])}"
                     f"{_ties(b)}", highlight=False, soft_wrap=True)
    for p in summary.pareto:
        stdout.print(f"pareto: trial {p['number']} ({', '.join(summary.objectives)}) = ({_fmt(p['values'])}) — "
                     f"{_params(p['params'])}", highlight=False, soft_wrap=True)
    if summary.counted:  # what a researcher does next (a hint: stderr, not data)
        from deconstruct.store import default_url, display_url

        storage = "" if summary.storage == display_url(default_url()) else f" --storage {summary.storage}"
        stderr.print(f"next: deconstruct report {summary.name}{storage}   (--by AXIS, --format html --out report.html)",
                     highlight=False, soft_wrap=True)


#: how a worker process starts: the CLI's entry point, with the working directory NOT on sys.path (a file
#: there named like a standard-library module must not run inside every worker)
def _run(make_runner: Any, format: TableFormat, workers: int = 1, device: str | None = None) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    from deconstruct.cli import interrupt_code

    procs: list[tuple[Any, Any]] = []
    watch: _WorkerWatch | None = None
    with StudyProgress() as progress:
        runner = make_runner(progress)
        try:
            if workers > 1:
                procs = _spawn_workers(runner, workers - 1, device)
                progress.print(f"started {workers - 1} more worker(s): pids {[p.pid for p, _ in procs]}")
                watch = _WorkerWatch(runner, procs, progress)
            summary = runner.run()
        except KeyboardInterrupt as exc:
            progress.progress.stop()
            if watch is not None:
                watch.close()
            _wait_workers(procs, interrupt=True)
            what = (f"trial {runner.interrupted} is recorded as failed (interrupted) and will be retried"
                    if runner.interrupted is not None else "between trials")
            verb = "terminated" if interrupt_code(exc) == 143 else "interrupted"
            stderr.print(f"{verb}: {what}; run the same command to continue study {runner.name}",
                         highlight=False, soft_wrap=True)
            raise typer.Exit(interrupt_code(exc)) from None
        if watch is not None:
            watch.close()
        code = _wait_workers(procs)
    _print_summary(summary, format)
    failed = _failed_line(runner)
    if failed:
        stderr.print(f"error: {failed}", highlight=False, soft_wrap=True)
    if code or failed:
        raise typer.Exit(code or 1)


def _failed_line(runner: Any) -> str | None:
    """One line counting the study's failed trials (those not to be retried), with their commonest reasons."""
    from collections import Counter

    from deconstruct.store import is_retryable

    trials = runner.rows.trials()
    retried = {t.retry_of for t in trials if t.retry_of is not None}  # a later trial took their place
    trials = [t for t in trials if t.number not in retried]
    failed = [t for t in trials if t.state == "failed" and not is_retryable(t.error)]
    if not failed:
        return None
    def short(error: str | None) -> str:
        text = (error or "unknown").split(";", 1)[0]
        return text if len(text) <= 60 else text[:59] + "…"

    reasons = Counter(short(t.error) for t in failed)
    shown = "; ".join(f"{r} ×{n}" for r, n in reasons.most_common(3))
    return (f"{len(failed)} of {len(trials)} trials of study {runner.name} failed ({shown}); "
            f"see `deconstruct study show {runner.name}`")


@study_app.command("run")
def run(
    spec: Path = typer.Argument(..., metavar="SPEC", help="Spec YAML file (its `search` and `study` sections)."),
    storage: str = StorageOption,
    n_trials: int = NTrialsOption,
    timeout: float = TimeoutOption,
    set_: list[str] = SetOption,
    workers: int = typer.Option(1, "--workers", min=1, help="Worker processes on this machine, this one included."),
    device: str = DeviceOption,
    checkpoint_dir: str = CheckpointOption,
    retry_failed: bool = typer.Option(
        False, "--retry-failed", metavar="",
        help="Retry every failed trial once (without it, a failed trial is retried when the code, plugins or "
             "environment changed since it failed).",
    ),
    format: TableFormat = typer.Option(TableFormat.table, "--format", "-f", help="Summary as table or json."),
) -> None:
    """Run SPEC's study, or continue it: trials and runs are stored; an interrupted study resumes.

    \b
    Examples:
      deconstruct study run studies/quickstart.yaml
      deconstruct study run studies/quickstart.yaml --set train.steps=30 --set name=quick --n-trials 2
      deconstruct study run my.yaml --storage postgresql://user@host/db --timeout 3600 --workers 4
    """
    from deconstruct.study import StudyRunner, read_spec

    data, text = read_spec(str(spec), set_)
    _run(lambda events: StudyRunner(data, text, storage=storage, n_trials=n_trials, timeout=timeout,
                                    events=events, device=device, checkpoint_root=checkpoint_dir,
                                    retry="all" if retry_failed else "changed"), format, workers, device)


@study_app.command("worker")
def worker(
    name: str = typer.Argument(..., metavar="NAME", help="Name of an existing study."),
    storage: str = StorageOption,
    n_trials: int = NTrialsOption,
    timeout: float = TimeoutOption,
    device: str = DeviceOption,
    nproc: int = NprocOption,
    checkpoint_dir: str = CheckpointOption,
    format: TableFormat = typer.Option(TableFormat.table, "--format", "-f", help="Summary as table or json."),
) -> None:
    """Join study NAME as one more worker, using the spec stored with it (run it on other machines).
    With --nproc N each of its runs trains data-parallel over N processes (rank 0 talks to the storage).

    \b
    Examples:
      deconstruct study worker quickstart --storage postgresql://user@host/db
      deconstruct study worker quickstart --storage postgresql://user@host/db --nproc 4   # 4 GPUs per trial
    """
    from deconstruct.store import Store
    from deconstruct.study import StudyRunner

    info = Store(storage, create=False).study(name)  # an unknown study fails here, before processes start
    if nproc > 1:
        from deconstruct.spec import TrainSpec
        from deconstruct.train._distributed import check_batch

        check_batch(TrainSpec.model_validate(info.spec.get("train") or {}).batch_size, nproc)
    leader = data_parallel(nproc, device)  # followers of a torchrun world never return from here
    try:
        _run(lambda events: StudyRunner(info.spec, info.spec_text, storage=storage, n_trials=n_trials, timeout=timeout,
                                        events=events, device=device, checkpoint_root=checkpoint_dir, retry="none"), format)
    except BaseException:
        if leader:
            end_data_parallel(ok=False)
        raise
    if leader:
        end_data_parallel()


def _ties(best: dict[str, Any]) -> str:
    """ " (tied with trial 2: the same configuration)" — a tie is not a win."""
    ties = best.get("ties") or []
    if not ties:
        return ""
    said = ", ".join(f"trial {t['number']}" + (" (the same configuration)" if t["same_configuration"] else
                                               f" ({_params(t['params'])})") for t in ties)
    return f" — tied with {said}"


def _best(trials: list[Any], info: Any) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    from deconstruct.study import best_record, pareto_trials

    if len(info.objectives) > 1:
        return None, [{"number": t.number, "values": t.values, "params": t.search_params} for t in pareto_trials(trials, info.directions)]
    return best_record(trials, info.directions), []


@study_app.command("list")
def list_studies(
    storage: str = StorageOption,
    format: TableFormat = typer.Option(TableFormat.table, "--format", "-f"),
) -> None:
    """List the studies in the storage: trials by state, runs, best value.

    \b
    Examples:
      deconstruct study list
      deconstruct study list --storage sqlite:///runs.db --format json
    """
    from deconstruct.store import Store, StudyNotFound

    rows: list[dict[str, Any]] = []
    try:
        store = Store(storage, readonly=True)  # writes nothing: works on a read-only file system
    except StudyNotFound:  # no database yet: no studies (and no file created)
        store = None
    for info in store.studies() if store is not None else []:
        best, pareto = _best(store.trials(info.name), info)  # type: ignore[union-attr]
        rows.append({**info.to_dict(), "best": best, "pareto_size": len(pareto) if len(info.objectives) > 1 else None})
    if format == TableFormat.json:
        print_json(rows)
        return
    if not rows:
        stdout.print("no studies")
        return
    from rich.table import Table

    table = Table()
    for col in ("study", "trials", "runs", "objective", "best", "created"):
        table.add_column(col, overflow="fold")
    for r in rows:
        trials = ", ".join(f"{n} {s}" for s, n in sorted(r["trials"].items())) or "—"
        objective = ", ".join(f"{o} ({d[:3]})" for o, d in zip(r["objectives"], r["directions"], strict=True))
        shown = _fmt(r["best"]["values"]) if r["best"] else (f"{r['pareto_size']} on the front" if r["pareto_size"] else "—")
        table.add_row(r["name"], trials, str(r["runs"]), objective, shown, str(r["created_at"])[:19])
    stdout.print(table)


@study_app.command("show")
def show(
    name: str = typer.Argument(..., metavar="NAME", help="Study name."),
    storage: str = StorageOption,
    format: TableFormat = typer.Option(TableFormat.table, "--format", "-f"),
) -> None:
    """Show a study: every trial (state, values, parameters, reason) and the best configuration.

    \b
    Examples:
      deconstruct study show quickstart
      deconstruct study show quickstart --format json
    """
    from deconstruct.store import Store

    store = Store(storage, readonly=True)
    info = store.study(name)
    trials = store.trials(name)
    runs = store.runs(name)
    best, pareto = _best(trials, info)
    if best is not None:
        config = next((r.config for r in runs if r.config_hash == best["config_hash"] and r.status == "completed"), None)
        best["config"] = config
    from deconstruct._code import code_key

    # the code behind each trial's runs, numbered in order of first use: more than one means mixed code
    codes: dict[Any, int] = {}
    trial_code: dict[int, set[int]] = {}
    for r in runs:
        if r.status == "completed":
            n = codes.setdefault(code_key(r.versions, r.plugins), len(codes) + 1)
            trial_code.setdefault(r.trial_number, set()).add(n)
    data: dict[str, Any] = {
        "study": info.to_dict(),
        "code_versions": len(codes),
        "trials": [{**t.to_dict(), "runs": [r.id for r in runs if r.trial_number == t.number],
                    "code": sorted(trial_code.get(t.number, ()))} for t in trials],
        "best": best,
        "pareto": pareto,
    }
    if format == TableFormat.json:
        print_json(data)
        return
    from rich.table import Table

    table = Table(title=f"{info.name} — {', '.join(info.objectives)} ({', '.join(info.directions)})", title_justify="left")
    for col in ("trial", "state", "values", "parameters", "seeds", "note"):
        table.add_column(col, overflow="fold")
    for t in data["trials"]:
        seeds = f"{len(t['runs'])} run(s)" + (f", reused {t['reused']}" if t["reused"] else "")
        notes = [t["error"] or "", f"retry of {t['retry_of']}" if t["retry_of"] is not None else "",
                 f"not applied: {', '.join(t['inactive_params'])}" if t["inactive_params"] else "",
                 f"code {', '.join(map(str, t['code']))}" if len(codes) > 1 and t["code"] else ""]
        note = "; ".join(n for n in notes if n)
        table.add_row(str(t["number"]), t["state"], _fmt(t["values"]), _params(t["search_params"]), seeds, note)
    stdout.print(table)
    if len(codes) > 1:
        stdout.print(f"note: these runs were made by {len(codes)} different versions of the code (deconstruct or a "
                     "plugin changed between them; 'code N' in the notes says which); compare with care, or rerun "
                     "in a new study", highlight=False, soft_wrap=True)
    if best:
        stdout.print(f"best: trial {best['number']} {info.objectives[0]}={_fmt(best['values'])} — {_params(best['params'])} "
                     f"(config {best['config_hash']})", highlight=False, soft_wrap=True)
    for p in pareto:
        stdout.print(f"pareto: trial {p['number']} = ({_fmt(p['values'])}) — {_params(p['params'])}", highlight=False, soft_wrap=True)


@study_app.command("delete")
def delete(
    name: str = typer.Argument(..., metavar="NAME", help="Study name."),
    storage: str = StorageOption,
    yes: bool = typer.Option(False, "--yes", "-y", metavar="", help="Do not ask for confirmation."),
) -> None:
    """Delete a study: its trials, runs and curves, and its Optuna study.

    \b
    Examples:
      deconstruct study delete quickstart --yes
    """
    from deconstruct.store import Store
    from deconstruct.study import delete_study

    store = Store(storage, create=False)
    info = store.study(name)  # StudyNotFound lists the known names
    if not yes:
        typer.confirm(f"delete study {name!r} ({sum(info.trials.values())} trials, {info.runs} runs)?", abort=True)
    delete_study(name, storage=store.url)
    stderr.print(f"deleted study {name}", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    from deconstruct.cli._submit import register as register_submit

    register_submit(study_app)
    app.add_typer(study_app, name="study")
