"""Study overhead: what a ``deconstruct study run`` costs beyond the training it does.

    python benchmarks/study_overhead.py                                   # the quickstart as it is
    python benchmarks/study_overhead.py --set train.steps=30              # a shortened copy
    python benchmarks/study_overhead.py --spec my.yaml --set train.seeds=[0]

Runs the spec as a study in a fresh SQLite file, exactly as a user would (a ``deconstruct study run``
subprocess), then reads the store and splits the command's wall time into

- start-up: interpreter, imports, spec validation, store migrations, Optuna study creation;
- per-trial bookkeeping: sampling, store writes, Optuna calls, heartbeats (study loop minus its runs);
- per-run set-up: task lookup, model construction, optimizer (run wall time minus its training loop);
- training: the training loops themselves, evaluations included (``metrics.train_seconds``).

Prints a table and the overhead fraction (everything but training) / (command wall time).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", default=str(REPO / "studies" / "quickstart.yaml"))
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE")
    args = parser.parse_args()

    from deconstruct.store import Store

    with tempfile.TemporaryDirectory() as tmp:
        storage = f"sqlite:///{Path(tmp) / 'bench.db'}"
        cmd = [sys.executable, "-m", "deconstruct", "study", "run", args.spec, "--storage", storage, "--format", "json"]
        for o in args.overrides:
            cmd += ["--set", o]
        tick = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "DECONSTRUCT_PROGRESS": "0"})
        total = time.perf_counter() - tick
        if proc.returncode != 0:
            sys.exit(f"study failed ({proc.returncode}):\n{proc.stderr}")
        summary = json.loads(proc.stdout)
        runs = Store(storage).runs(summary["name"])
        trials = Store(storage).trials(summary["name"])

    train = sum(r.metrics.get("train_seconds", 0.0) for r in runs)
    run_wall = sum(r.wall_seconds or 0.0 for r in runs)
    loop = summary["seconds"]
    rows = [
        ("command wall time", total),
        ("  start-up (imports, spec, store, Optuna)", total - loop),
        ("  study loop", loop),
        ("    per-trial bookkeeping (loop − runs)", loop - run_wall),
        ("    runs (wall)", run_wall),
        ("      per-run set-up (run wall − training)", run_wall - train),
        ("      training loops (incl. evaluation)", train),
    ]
    print(f"study {summary['name']}: {len(trials)} trials, {len(runs)} runs "
          f"({', '.join(args.overrides) or 'spec as written'}); torch threads {os.environ.get('OMP_NUM_THREADS', 'default')}")
    width = max(len(name) for name, _ in rows)
    print(f"{'':{width}}  {'seconds':>9}  {'share':>6}")
    for name, seconds in rows:
        print(f"{name:{width}}  {seconds:9.2f}  {seconds / total:6.1%}")
    overhead = total - train
    print(f"overhead: {overhead:.2f} s of {total:.2f} s = {overhead / total:.1%} of the command's wall time "
          f"({(loop - train) / loop:.1%} of the study loop; {(loop - train) / max(1, len(runs)):.3f} s per run)")


if __name__ == "__main__":
    main()
