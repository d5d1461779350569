"""``deconstruct study submit``: cluster jobs that join a study, through submitit."""

from __future__ import annotations

from pathlib import Path

import typer

from deconstruct.cli._common import DeviceOption, SetOption, print_json, stderr, stdout


def submit(
    spec: Path = typer.Argument(..., help="Spec YAML file (the study is created, or continued, in --storage)."),
    slurm: str = typer.Option(
        "", "--slurm", metavar="NAME=VALUE,…",
        help="submitit's Slurm parameters (sbatch names), e.g. partition=gpu,gpus_per_node=4,time=04:00:00.",
    ),
    jobs: int = typer.Option(1, "--jobs", min=1, help="Worker jobs to submit (a job array)."),
    storage: str = typer.Option(
        None, "--storage", metavar="URL",
        help="SQLAlchemy URL every job can reach (PostgreSQL; SQLite only on storage all nodes share).",
    ),
    set_: list[str] = SetOption,
    nproc: int = typer.Option(None, "--nproc", min=1, help="Processes per job (default: gpus_per_node, else 1)."),
    device: str = DeviceOption,
    checkpoint_dir: str = typer.Option(
        None, "--checkpoint-dir", metavar="DIR", help="Root of the runs' checkpoints, on storage every node shares."
    ),
    folder: Path = typer.Option(
        None, "--folder", help="submitit's folder for job scripts, pickles and logs (default: submitit/NAME)."
    ),
    cluster: str = typer.Option("slurm", "--cluster", help="slurm, or local (the same jobs as processes here)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the sbatch script and submit nothing."),
    wait: bool = typer.Option(False, "--wait", help="Wait for the jobs to finish and print their summaries."),
) -> None:
    """Submit --jobs cluster jobs, each a worker of SPEC's study on a shared --storage (submitit).

    Jobs checkpoint and requeue themselves when Slurm signals preemption or their time limit; the
    interrupted trial is retried and its run resumes from its checkpoint (set train.checkpoint_every).

    \b
    Examples:
      deconstruct study submit my.yaml --storage postgresql+psycopg://u@db/s --jobs 16 \\
          --slurm partition=gpu,gpus_per_node=4,time=04:00:00 --checkpoint-dir /shared/ckpt
      deconstruct study submit my.yaml --slurm partition=gpu,time=60 --jobs 4 --dry-run
    """
    from deconstruct.study import StudyRunner, read_spec
    from deconstruct.study._submit import SubmitError, parse_slurm, sbatch_script, submit_study

    if cluster not in ("slurm", "local"):
        raise SubmitError(f"--cluster {cluster!r}: use slurm or local")
    params = parse_slurm(slurm)
    data, text = read_spec(str(spec), set_)
    params.setdefault("job_name", f"deconstruct-{data['name']}")
    folder = folder or Path("submitit") / str(data["name"])
    if dry_run:
        typer.echo(sbatch_script(folder, params, jobs), nl=False)
        return
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    runner = StudyRunner(data, text, storage=storage, device=device, checkpoint_root=checkpoint_dir)  # creates it
    submitted = submit_study(runner.name, runner.url, jobs=jobs, cluster=cluster, slurm=params, folder=folder,
                             nproc=nproc, device=device, checkpoint_root=checkpoint_dir)
    stderr.print(f"submitted {len(submitted)} job(s) for study {runner.name}: "
                 f"{', '.join(str(j.job_id) for j in submitted)} (logs in {folder})", highlight=False, markup=False,
                 soft_wrap=True)
    if not wait:
        stdout.print("\n".join(str(j.job_id) for j in submitted), highlight=False, markup=False)
        return
    results = []
    for job in submitted:
        try:
            results.append({"job": str(job.job_id), "summary": job.result()})
        except Exception as exc:  # a job that failed: its last line, not a remote traceback
            lines = [ln for ln in str(exc).splitlines() if ln.strip()]
            results.append({"job": str(job.job_id), "error": lines[-1] if lines else type(exc).__name__})
    print_json(results)
    if any("error" in r for r in results):
        raise typer.Exit(1)


def register(study_app: typer.Typer) -> None:
    study_app.command("submit")(submit)
