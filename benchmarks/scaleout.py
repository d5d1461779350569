"""Scale-out costs on this machine: tokens/s of one vs two CPU processes (DDP over gloo, launched by
torchrun through ``deconstruct train --nproc``), and the overhead of ``train.checkpoint_every: 100``.

    python benchmarks/scaleout.py                  # both tables
    python benchmarks/scaleout.py --steps 300 --rounds 3

Each configuration runs ``--rounds`` times, interleaved; the median is shown. Two processes split the same
global batch, so on a machine with two idle cores the ideal ratio is 2.0 (less: communication, and cores
shared with other work). The checkpoint overhead is the time of one save (model + AdamW state + RNG + curve, written to a
temporary file and renamed) over the time of the 100 training steps between two saves.
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


def checkpoint_cost(steps: int, folder: Path, saves: int = 5) -> tuple[float, float]:
    """(seconds per training step, seconds per checkpoint save) of the benchmark model: one run that saves
    once at its end, then ``saves`` more saves of that same state (model + AdamW moments + RNG + curve)."""
    import time

    import torch

    from deconstruct.spec import load_spec
    from deconstruct.train import read_checkpoint, train
    from deconstruct.train._checkpoint import Checkpointer

    torch.set_num_threads(1)
    ckpt = Path(tempfile.mkdtemp(dir=folder))
    result = train(load_spec(SPEC, [f"train.steps={steps}", f"train.checkpoint_every={steps}"]), seed=0,
                   checkpoint_dir=ckpt, with_diagnostics=False)
    state = read_checkpoint(ckpt)
    saver = Checkpointer(ckpt, steps)
    tick = time.perf_counter()
    for _ in range(saves):
        saver.save(state)
    return result.tokens / result.tokens_per_second / result.steps, (time.perf_counter() - tick) / saves


def report_ddp(tps: dict[int, list[float]], args: argparse.Namespace) -> None:
    one, two = statistics.median(tps[1]), statistics.median(tps[2])
    print(f"DDP on the CPU (gloo), d_model 128, 4 layers, seq 128, global batch 16, {args.steps} steps, "
          f"median of {args.rounds}")
    print("| processes | tokens/s |")
    print("|---|---|")
    print(f"| 1 | {one:,.0f} |")
    print(f"| 2 | {two:,.0f} |")
    print(f"ratio 2/1: {two / one:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=300, help="steps per run (both measurements)")
    ap.add_argument("--skip-ddp", action="store_true", help="only the checkpoint measurement")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        spec_path = folder / "spec.yaml"
        spec = {**SPEC, "train": {**SPEC["train"], "steps": args.steps}}
        spec_path.write_text(yaml.safe_dump(spec))
        tps: dict[int, list[float]] = {1: [], 2: []}
        for _ in range(0 if args.skip_ddp else args.rounds):
            for n in (1, 2):
                tps[n].append(ddp_tokens_per_second(spec_path, n))
                print(f"  {n} process(es): {tps[n][-1]:,.0f} tokens/s", file=sys.stderr, flush=True)
        if not args.skip_ddp:
            report_ddp(tps, args)

        step_s, save_s = checkpoint_cost(args.steps, folder)
        print()
        print(f"checkpoints, same model: {step_s * 1000:.1f} ms per training step, {save_s * 1000:.1f} ms per save")
        print(f"overhead of checkpoint_every 100: {100 * save_s / (100 * step_s):.2f} % of training time")


if __name__ == "__main__":
    main()
