"""Prepared data: prepare throughput, loader throughput, and the quickstart fed from a prepared dataset.

    python benchmarks/data_loader.py                       # stdlib, bytes tokenizer, 3 alternating rounds
    python benchmarks/data_loader.py --tokenizer bpe:4096 --workers 2 --steps 40

1. ``prepare`` of the stdlib source (every .py file of this Python's standard library) into a temporary
   dataset: MB of input per second, wall clock (and CPU seconds of this process: tokenisation workers
   excluded).
2. Loader throughput: ``get_batch("train")`` of the ``lm`` task, in tokens/s, for the prepared dataset read by
   memory map (``task.data``) and for today's in-memory bytes (``corpus: stdlib``), B×T as in the quickstart.
3. The quickstart model trained for ``--steps`` steps fed from each (tokens/s of training, data loading
   included). Rounds alternate so drift on a shared machine hits both; the ratio memory-map / in-memory is
   given for the best rounds (noise only slows a round down) and as the median of per-round ratios.

With ``--tokenizer bpe:N`` parts 2–3 compare tokens of different sizes: the ratio is then not a like-for-like
loader comparison (the model's vocabulary head grows too).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from deconstruct.data import PrepareOptions, prepare
from deconstruct.spec import load_spec
from deconstruct.train import build_task, train

QUICKSTART = Path(__file__).resolve().parent.parent / "studies" / "quickstart.yaml"


def loader_tokens_per_second(task, batch_size: int, batches: int) -> float:
    gen = torch.Generator().manual_seed(0)
    task.get_batch("train", batch_size, gen)  # warm the page cache / first touch
    tick = time.perf_counter()
    for _ in range(batches):
        task.get_batch("train", batch_size, gen)
    return batches * batch_size * task.seq_len / (time.perf_counter() - tick)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokenizer", default="bytes")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batches", type=int, default=2000, help="batches timed for the loader figure")
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "stdlib"
        cpu0 = time.process_time()
        res = prepare(PrepareOptions(["stdlib"], out, tokenizer=args.tokenizer, workers=args.workers))
        cpu = time.process_time() - cpu0
        mb = res.source_bytes / 1e6
        print(f"prepare stdlib ({args.tokenizer}, {args.workers} worker(s)): {mb:.1f} MB, {res.header.tokens:,} tokens "
              f"in {res.seconds:.2f} s wall = {mb / res.seconds:.1f} MB/s ({cpu:.2f} s CPU in this process)",
              flush=True)

        base = [f"train.steps={args.steps}", f"train.eval_every={args.steps}", "train.eval_batches=1"]
        sides = {"memory map (task.data)": load_spec(QUICKSTART, base + [f"task.data={out}"]),
                 "in-memory bytes (corpus)": load_spec(QUICKSTART, base)}
        B = sides["in-memory bytes (corpus)"].spec.train.batch_size
        loader = {name: loader_tokens_per_second(build_task(r), B, args.batches) for name, r in sides.items()}
        trained: dict[str, list[float]] = {name: [] for name in sides}
        for r in range(args.rounds):
            for name, resolved in sides.items():
                trained[name].append(train(resolved, seed=0, with_diagnostics=False).tokens_per_second)
            print(f"round {r + 1}: " + "   ".join(f"{n} {v[-1]:,.0f} tok/s" for n, v in trained.items()), flush=True)

    print()
    print(f"| data source               | loader tokens/s | quickstart best tokens/s | median (of {args.rounds}) |")
    print("|---------------------------|-----------------|--------------------------|-------------|")
    for name in sides:
        print(f"| {name:<25} | {loader[name]:>15,.0f} | {max(trained[name]):>24,.0f} | "
              f"{statistics.median(trained[name]):>11,.0f} |")
    mm, mem = trained.values()
    print(f"\nquickstart ratio memory-map / in-memory: best {max(mm) / max(mem):.3f}, "
          f"median of rounds {statistics.median(a / b for a, b in zip(mm, mem, strict=True)):.3f}")


if __name__ == "__main__":
    main()
