"""Local worker processes of ``study run --workers N``: each its share of the cores, isolated from the
working directory, watched so that a dead one is reported within seconds and its finished trials shown."""

from __future__ import annotations

from typing import Any

from deconstruct.cli._common import stderr

#: how a worker starts: the console entry, without the working directory on sys.path (so a file there named
#: like a standard-library module is never imported by a worker)
_WORKER_BOOT = ("import sys; sys.path[:] = [p for p in sys.path if p not in ('', '.')]; "
                "from deconstruct.cli import main; sys.argv[0] = 'deconstruct'; main()")


def _params(params: dict[str, Any]) -> str:
    """Searched values for people (floats to 4 significant digits; --format json keeps full precision)."""
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()) or "(base config)"


def worker_threads(workers: int) -> int:
    """Torch threads per process so that ``workers`` processes share the cores instead of oversubscribing."""
    import os

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // max(1, workers))


def _spawn_workers(runner: Any, n: int, device: str | None) -> list[tuple[Any, Any]]:
    """``n`` more ``deconstruct study worker`` processes on this machine; their output goes to temp files.
    Unless OMP_NUM_THREADS is set, each process (this one too) gets cores // (n + 1) torch threads."""
    import os
    import subprocess
    import sys
    import tempfile

    cmd = [sys.executable, "-c", _WORKER_BOOT, "study", "worker", runner.name, "--storage", runner.url,
           "--n-trials", str(runner.target)]
    if runner.timeout is not None:
        cmd += ["--timeout", str(runner.timeout)]
    if device:
        cmd += ["--device", device]
    if runner._checkpoint_root:
        cmd += ["--checkpoint-dir", str(runner._checkpoint_root)]
    env = {**os.environ, "DECONSTRUCT_PROGRESS": "0"}
    if "OMP_NUM_THREADS" not in os.environ:
        import torch

        threads = worker_threads(n + 1)
        env["OMP_NUM_THREADS"] = str(threads)
        torch.set_num_threads(threads)
    procs = []
    for _ in range(n):
        log = tempfile.TemporaryFile(mode="w+")
        procs.append((subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, env=env), log))
    return procs


class _WorkerWatch:
    """Polls the local worker processes every second: one that dies is reported at once (with the last line
    it wrote) and its trial is closed and queued for retry, instead of waiting for its heartbeat to expire."""

    def __init__(self, runner: Any, procs: list[tuple[Any, Any]], progress: Any):
        import threading

        self.runner, self.procs, self.progress = runner, procs, progress
        from deconstruct.store._store import utcnow

        self.stop = threading.Event()
        self.reported: set[int] = set()
        self.shown: set[int] = set()
        self.since = utcnow()
        self.thread = threading.Thread(target=self._loop, name="deconstruct-worker-watch", daemon=True)
        self.thread.start()

    def _others(self) -> None:
        """Print the trials the workers finished since the last look (the parent prints its own)."""
        import os

        for t in self.runner.rows.trials():
            if t.state == "running" or t.pid in (None, os.getpid()) or t.number in self.shown:
                continue
            self.shown.add(t.number)
            if t.finished_at is not None and t.finished_at < self.since:
                continue  # finished before this command started
            values = ", ".join(f"{n}={v:.4g}" for n, v in zip(self.runner.objectives, t.values or [], strict=False))
            state = f"completed {values}" if t.state == "completed" else f"{t.state}: {t.error}"
            self.progress.print(f"trial {t.number} (worker {t.pid}) {_params(t.search_params)} — {state}")

    def _loop(self) -> None:
        while not self.stop.wait(1.0):
            try:
                self._others()
            except Exception:  # a display nicety: never let it stop the study
                pass
            for proc, _log in self.procs:
                code = proc.poll()  # reaps it: a zombie would still look alive to the runner
                if code is None or code == 0 or proc.pid in self.reported:
                    continue
                self.reported.add(proc.pid)
                how = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
                self.progress.print(f"worker {proc.pid} {how}; its trial is recorded as 'worker died' and retried")
                try:
                    self.runner.recovery.sweep(self.runner.study)
                except Exception:  # the main loop's housekeeping closes it soon anyway
                    pass

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)


def _wait_workers(procs: list[tuple[Any, Any]], interrupt: bool = False) -> int:
    """Wait for the worker processes (forwarding Ctrl-C); report the ones that failed. Returns the worst code."""
    import signal

    worst = 0
    for proc, _ in procs:
        if interrupt and proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    for proc, log in procs:
        code = proc.wait()
        if code not in (0, 130) or (code == 130 and not interrupt):
            log.seek(0)
            tail = [ln for ln in log.read().splitlines() if ln.strip()][-1:] or ["(no output)"]
            stderr.print(f"worker {proc.pid} exited with code {code}: {tail[0]}", highlight=False, soft_wrap=True)
            worst = max(worst, 1)
        log.close()
    return worst
