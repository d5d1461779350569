"""Scale-out costs on this machine: tokens/s of one vs two CPU processes (DDP over gloo, launched by
torchrun through ``deconstruct train --nproc``), and the overhead of ``train.checkpoint_every: 100``.

    python benchmarks/scaleout.py                  # both tables
    python benchmarks/scaleout.py --steps 300 --rounds 3

Each configuration runs ``--rounds`` times, interleaved; the median is shown. Two processes split the same
global batch, so on a machine with two idle cores the ideal ratio is 2.0 (less: communication, and cores
shared with other work). The checkpoint overhead compares training time with and without a checkpoint every
100 steps (each save writes model + AdamW state to a temporary file and renames it).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

SPEC = {
    "name": "bench-scaleout",
    "task": {"name": "lm", "corpus": "stdlib", "seq_len": 128, "max_bytes": 2_000_000},
    "model": {"d_model": 128, "layers": 4, "heads": 4},
    "train": {"steps": 100, "batch_size": 16, "eval_every": 1_000_000, "eval_batches": 1, "seeds": [0],
              "device": "cpu"},
}


def ddp_tokens_per_second(spec_path: Path, nproc: int) -> float:
    cmd = [sys.executable, "-m", "deconstruct", "train", str(spec_path), "--format", "json", "--device", "cpu"]
    if nproc > 1:
        cmd += ["--nproc", str(nproc)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DECONSTRUCT_PROGRESS": "0"}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    return float(json.loads(out.stdout)["tokens_per_second"])


def checkpoint_seconds(steps: int, every: int | None, folder: Path) -> float:
    import torch

    from deconstruct.spec import load_spec
    from deconstruct.train import train

    torch.set_num_threads(1)
    overrides = [f"train.steps={steps}"] + ([f"train.checkpoint_every={every}"] if every else [])
    ckpt = Path(tempfile.mkdtemp(dir=folder)) if every else None
    result = train(load_spec(SPEC, overrides), seed=0, checkpoint_dir=ckpt, with_diagnostics=False)
    return result.seconds  # the training loop with its saves and final evaluation; set-up excluded


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=300, help="steps per run (both measurements)")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        spec_path = folder / "spec.yaml"
        spec = {**SPEC, "train": {**SPEC["train"], "steps": args.steps}}
        spec_path.write_text(yaml.safe_dump(spec))
        tps: dict[int, list[float]] = {1: [], 2: []}
        for _ in range(args.rounds):
            for n in (1, 2):
                tps[n].append(ddp_tokens_per_second(spec_path, n))
                print(f"  {n} process(es): {tps[n][-1]:,.0f} tokens/s", file=sys.stderr, flush=True)
        one, two = statistics.median(tps[1]), statistics.median(tps[2])
        print(f"DDP on the CPU (gloo), d_model 128, 4 layers, seq 128, global batch 16, {args.steps} steps, "
              f"median of {args.rounds}")
        print("| processes | tokens/s |")
        print("|---|---|")
        print(f"| 1 | {one:,.0f} |")
        print(f"| 2 | {two:,.0f} |")
        print(f"ratio 2/1: {two / one:.2f}")

        secs: dict[str, list[float]] = {"none": [], "every 100": []}
        for _ in range(args.rounds):
            secs["none"].append(checkpoint_seconds(args.steps, None, folder))
            secs["every 100"].append(checkpoint_seconds(args.steps, 100, folder))
            print(f"  seconds without / with checkpoints: {secs['none'][-1]:.2f} / {secs['every 100'][-1]:.2f}",
                  file=sys.stderr, flush=True)
        base, ck = statistics.median(secs["none"]), statistics.median(secs["every 100"])
        print()
        print(f"checkpoints, same model, {args.steps} steps, median of {args.rounds}")
        print("| checkpoints | training seconds |")
        print("|---|---|")
        print(f"| none | {base:.2f} |")
        print(f"| every 100 steps | {ck:.2f} |")
        print(f"overhead: {100 * (ck - base) / base:+.1f} %")


if __name__ == "__main__":
    main()
