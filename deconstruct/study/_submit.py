"""``study submit``: N cluster jobs, each one more worker of a study on shared storage, through submitit.

submitit (optional extra ``deconstruct[slurm]``) writes the sbatch script, submits a job array of N jobs
and runs :class:`StudyWorkerJob` in each. A job joins the study like ``deconstruct study worker`` and works
until the study is done. When Slurm signals that the job is about to be preempted or to reach its time limit
(submitit asks for ``--signal=USR2@90``), submitit's checkpointing mechanism takes over:
:meth:`StudyWorkerJob.checkpoint` hands back the job to requeue. The signal is first deferred to the end of
the training step (:mod:`deconstruct.train._preempt`): the run saves its checkpoint and its trial is recorded
as interrupted, so the requeued job (or any other worker) retries the trial and resumes the run where it
stopped. With ``--nproc N > 1`` the job runs the worker under torchrun; its processes are stopped by the
requeue and the retried run resumes from its last periodic checkpoint (``train.checkpoint_every``).

``cluster="local"`` runs the same jobs as local processes (submitit's LocalExecutor, for tests and a single
machine); :func:`sbatch_script` shows the script a Slurm submission would use, without Slurm.
"""

from __future__ import annotations

import re
import signal
from pathlib import Path
from typing import Any

from deconstruct._errors import DeconstructError


class SubmitError(DeconstructError):
    """Bad ``--slurm`` options, or no submitit / Slurm where one is needed."""


def _submitit() -> Any:
    try:
        import submitit
    except ImportError:
        raise SubmitError("study submit needs submitit: pip install 'deconstruct[slurm]'") from None
    return submitit


def _minutes(value: str) -> int:
    """Slurm's time formats (MM, HH:MM:SS, D-HH[:MM[:SS]], MM:SS) as whole minutes (at least 1)."""
    m = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", value.strip())
    if m is None:
        raise SubmitError(f"--slurm time={value!r} is not a Slurm time; use minutes, HH:MM:SS or D-HH:MM:SS")
    days, a, b, c = (int(g) if g else None for g in m.groups())
    if days is not None:  # D-HH[:MM[:SS]]
        minutes = days * 1440 + (a or 0) * 60 + (b or 0) + (1 if c else 0)
    elif c is not None:  # HH:MM:SS
        minutes = (a or 0) * 60 + (b or 0) + (1 if c else 0)
    elif b is not None:  # MM:SS
        minutes = (a or 0) + (1 if b else 0)
    else:  # MM
        minutes = a or 0
    return max(1, minutes)


def parse_slurm(text: str) -> dict[str, Any]:
    """``partition=gpu,gpus_per_node=4,time=04:00:00`` → submitit's Slurm parameters (sbatch names with
    underscores; ``time`` in minutes). Unknown names are refused with the list of valid ones."""
    submitit = _submitit()
    valid = sorted(submitit.SlurmExecutor._valid_parameters())
    params: dict[str, Any] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        if "=" not in item:
            raise SubmitError(f"--slurm expects NAME=VALUE items separated by commas, got {item!r}")
        name, value = (s.strip() for s in item.split("=", 1))
        name = name.replace("-", "_")
        if name not in valid:
            raise SubmitError(f"--slurm {name!r} is not a submitit Slurm parameter; valid: {', '.join(valid)}")
        params[name] = _minutes(value) if name == "time" else int(value) if value.isdigit() else value
    return params


def _job_log() -> Any:
    """The job's log (submitit keeps each job's stderr in its folder)."""
    import logging
    import sys

    log = logging.getLogger("deconstruct.job")
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s deconstruct: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
    return log


def _log_events() -> Any:
    from deconstruct.study import StudyEvents

    log = _job_log()

    class LogEvents(StudyEvents):
        def on_note(self, message: str) -> None:
            log.info(message)

        def on_trial_end(self, o: Any) -> None:
            log.info(f"trial {o.number} [{o.done}/{o.total}] {o.params} — {o.state}"
                     + (f" {o.values}" if o.values else f": {o.error}"))

    return LogEvents()


class StudyWorkerJob:
    """One cluster job: a worker of study ``name`` (``study worker`` in-process, or under torchrun)."""

    def __init__(self, name: str, storage: str, *, nproc: int = 1, device: str | None = None,
                 checkpoint_root: str | None = None, n_trials: int | None = None):
        self.name, self.storage, self.nproc, self.device = name, storage, nproc, device
        self.checkpoint_root, self.n_trials = checkpoint_root, n_trials

    def __call__(self, index: int = 0) -> dict[str, Any]:
        if self.nproc > 1:
            return self._data_parallel()
        from deconstruct.study import join_study
        from deconstruct.train._preempt import Preempted, clear, defer

        submitit = _submitit()
        usr = submitit.JobEnvironment._usr_sig()  # the signal submitit asked Slurm for (USR2 by default)
        original = signal.getsignal(usr)
        if callable(original):  # submitit's checkpoint-and-requeue: deferred to the end of a training step
            signal.signal(usr, defer(original))
        try:
            summary = join_study(self.name, storage=self.storage, n_trials=self.n_trials, device=self.device,
                                 checkpoint_root=self.checkpoint_root, events=_log_events())
        except Preempted as exc:  # the run saved its state, the trial is recorded as interrupted: requeue now
            _job_log().info(f"{exc}; requeuing")
            clear()
            if callable(original):
                original(usr, None)  # submitit: self.checkpoint(), requeue, exit
            raise
        return summary.to_dict()

    def _data_parallel(self) -> dict[str, Any]:
        from deconstruct.train._distributed import launch

        argv = ["study", "worker", self.name, "--storage", self.storage, "--nproc", str(self.nproc), "--format", "json"]
        argv += ["--device", self.device] if self.device else []
        argv += ["--checkpoint-dir", self.checkpoint_root] if self.checkpoint_root else []
        argv += ["--n-trials", str(self.n_trials)] if self.n_trials else []
        code = launch(argv, self.nproc)
        if code:
            raise DeconstructError(f"the study worker under torchrun exited with code {code}")
        return {"name": self.name, "exit_code": code}

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """submitit calls this on preemption or timeout: the job to requeue is this same worker (the study's
        state lives in the storage and the runs' checkpoints, not in this object)."""
        return _submitit().helpers.DelayedSubmission(self, *args, **kwargs)


def make_executor(folder: str | Path, cluster: str, slurm: dict[str, Any]) -> Any:
    """A submitit executor: ``slurm`` (needs ``srun`` on this machine) or ``local`` (processes here)."""
    submitit = _submitit()
    if cluster == "local":
        executor = submitit.LocalExecutor(folder=str(folder))
        executor.update_parameters(timeout_min=int(slurm.get("time", 60)))
        return executor
    try:
        executor = submitit.SlurmExecutor(folder=str(folder))
    except RuntimeError as exc:  # no srun: not on a Slurm login node
        raise SubmitError(f"cannot submit to Slurm from this machine ({exc}); run on a login node, or "
                          "use --dry-run to see the job script") from None
    executor.update_parameters(**slurm)
    return executor


def sbatch_script(folder: str | Path, slurm: dict[str, Any], jobs: int) -> str:
    """The sbatch script submitit would submit for ``jobs`` array tasks (written without Slurm)."""
    submitit = _submitit()

    class ScriptOnly(submitit.SlurmExecutor):  # type: ignore[misc, name-defined]
        @classmethod
        def affinity(cls) -> int:  # writes a script, submits nothing: srun need not exist here
            return 2

    executor = ScriptOnly(folder=str(folder))
    executor.update_parameters(**slurm, array_parallelism=jobs)
    executor.parameters["map_count"] = jobs
    text = executor._make_submission_file_text(executor._submitit_command_str, "dry-run")
    executor.parameters.pop("map_count")
    return str(text)


def submit_study(name: str, storage: str, *, jobs: int, cluster: str = "slurm", slurm: dict[str, Any] | None = None,
                 folder: str | Path, nproc: int | None = None, device: str | None = None,
                 checkpoint_root: str | None = None, n_trials: int | None = None) -> list[Any]:
    """Submit ``jobs`` workers of study ``name`` (which must exist in ``storage``); returns submitit jobs.
    ``nproc`` defaults to ``gpus_per_node`` (one process per GPU)."""
    slurm = dict(slurm or {})
    nproc = nproc or int(slurm.get("gpus_per_node") or 1)
    executor = make_executor(folder, cluster, slurm)
    job = StudyWorkerJob(name, storage, nproc=nproc, device=device, checkpoint_root=checkpoint_root, n_trials=n_trials)
    return list(executor.map_array(job, range(jobs)))
