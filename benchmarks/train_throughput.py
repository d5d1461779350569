"""Training throughput: deconstruct vs a hand-written PyTorch loop of the same model on the same data.

    python benchmarks/train_throughput.py                 # quickstart-sized model, 3 alternating rounds
    python benchmarks/train_throughput.py --d-model 128 --layers 4 --steps 60

Both sides train a pre-norm GPT (learned positions, LayerNorm without bias, fused QKV, SDPA causal attention,
GELU MLP, tied head) with AdamW (decay on matrices only), warm-up + cosine, gradient clipping, on random
windows of the stdlib byte corpus. Tokens/s counts training steps only (evaluation excluded) on both sides.
Rounds alternate (deconstruct, hand, deconstruct, …) so drift on a shared machine hits both. The first
--skip steps of every run are not timed. --compile adds deconstruct with ``train.compile: true`` (the whole
model through torch.compile). Prints a
table and the ratio deconstruct / hand-written (the bar: ≥ 0.95), of the best rounds (noise only slows a
round down) and as the median of the per-round ratios.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from deconstruct.spec import load_spec
from deconstruct.tasks._lm import load_corpus
from deconstruct.train import train


# ---- the hand-written model: nanoGPT-style, written out here on purpose ----------------------------------
class HandBlock(nn.Module):
    def __init__(self, d: int, h: int, hidden: int):
        super().__init__()
        self.h = h
        self.ln1 = nn.LayerNorm(d, bias=False)
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.proj = nn.Linear(d, d, bias=False)
        self.ln2 = nn.LayerNorm(d, bias=False)
        self.up = nn.Linear(d, hidden, bias=False)
        self.down = nn.Linear(hidden, d, bias=False)

    def forward(self, x):
        B, T, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=-1)
        q, k, v = (z.view(B, T, self.h, d // self.h).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).reshape(B, T, d))
        return x + self.down(F.gelu(self.up(self.ln2(x))))


class HandGPT(nn.Module):
    def __init__(self, V: int, T: int, d: int, h: int, L: int):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(V, d), nn.Embedding(T, d)
        self.blocks = nn.ModuleList(HandBlock(d, h, 4 * d) for _ in range(L))
        self.ln_f = nn.LayerNorm(d, bias=False)
        self.head = nn.Linear(d, V, bias=False)
        self.head.weight = self.wte.weight
        for mod in self.modules():
            if isinstance(mod, (nn.Linear, nn.Embedding)):
                nn.init.normal_(mod.weight, 0.0, 0.02)

    def forward(self, idx):
        x = self.wte(idx) + self.wpe.weight[: idx.shape[1]]
        for b in self.blocks:
            x = b(x)
        return self.head(self.ln_f(x))


def hand_loop(data: torch.Tensor, args) -> float:
    """Returns training tokens/s of a plain loop."""
    torch.manual_seed(0)
    model = HandGPT(256, args.seq_len, args.d_model, args.heads, args.layers)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95))
    g = torch.Generator().manual_seed(0)
    offsets = torch.arange(args.seq_len + 1)
    warmup = max(1, args.steps // 10)
    elapsed = 0.0
    for step in range(args.steps):
        t0 = time.perf_counter()
        lr = args.lr * (step + 1) / warmup if step < warmup else args.lr * (
            0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - warmup) / (args.steps - warmup))))
        for group in opt.param_groups:
            group["lr"] = lr
        ix = torch.randint(len(data) - args.seq_len - 1, (args.batch_size,), generator=g)
        w = data[ix[:, None] + offsets].long()
        x, y = w[:, :-1], w[:, 1:]
        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        loss.item()
        if step >= args.skip:
            elapsed += time.perf_counter() - t0
    return (args.steps - args.skip) * args.batch_size * args.seq_len / elapsed


class StepClock:
    """Wall time of every training step after the first ``skip`` (compilation happens in the first)."""

    def __init__(self, skip: int):
        self.skip, self.last, self.elapsed, self.steps = skip, None, 0.0, 0

    def on_step(self, step: int, loss: float, tokens_per_second: float) -> None:
        now = time.perf_counter()
        if step > self.skip and self.last is not None:
            self.elapsed += now - self.last
            self.steps += 1
        self.last = now


def deconstruct_run(args, compile: bool = False) -> float:
    spec = {
        "name": "throughput",
        "task": {"name": "lm", "corpus": "stdlib", "seq_len": args.seq_len},
        "model": {"d_model": args.d_model, "layers": args.layers, "heads": args.heads},
        "train": {"steps": args.steps, "batch_size": args.batch_size, "lr": args.lr, "eval_every": args.steps,
                  "eval_batches": 1, "device": "cpu", "compile": compile},
    }
    clock = StepClock(args.skip)
    result = train(load_spec(spec), seed=0, callback=clock, with_diagnostics=False)
    if compile and result.metrics.get("compile") != "compiled":
        print(f"note: {result.metrics.get('compile')}", flush=True)
    return clock.steps * args.batch_size * args.seq_len / clock.elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--d-model", type=int, default=64)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--skip", type=int, default=3, help="first steps left out of every timing (compilation, warm-up)")
    ap.add_argument("--compile", action="store_true", help="also time deconstruct with train.compile: true")
    args = ap.parse_args()

    data = load_corpus("stdlib")
    train_data = data  # the hand loop samples the whole corpus; the split does not change the cost
    ours, hand, comp = [], [], []
    for r in range(args.rounds):
        ours.append(deconstruct_run(args))
        hand.append(hand_loop(train_data, args))
        line = f"round {r + 1}: deconstruct {ours[-1]:,.0f} tok/s   hand-written {hand[-1]:,.0f} tok/s"
        if args.compile:
            comp.append(deconstruct_run(args, compile=True))
            line += f"   deconstruct compiled {comp[-1]:,.0f} tok/s"
        print(line, flush=True)
    ratios = [o / h for o, h in zip(ours, hand, strict=True)]
    print()
    print(f"model: d_model={args.d_model} layers={args.layers} heads={args.heads} seq_len={args.seq_len} "
          f"batch={args.batch_size} steps={args.steps} (first {args.skip} not timed) threads={torch.get_num_threads()} "
          f"torch={torch.__version__}")
    print(f"| loop                  | best tokens/s | median tokens/s  (of {args.rounds} rounds) |")
    print("|-----------------------|---------------|-----------------|")
    print(f"| deconstruct           | {max(ours):>13,.0f} | {statistics.median(ours):>15,.0f} |")
    if comp:
        print(f"| deconstruct, compiled | {max(comp):>13,.0f} | {statistics.median(comp):>15,.0f} |")
    print(f"| hand-written          | {max(hand):>13,.0f} | {statistics.median(hand):>15,.0f} |")
    # noise on a shared machine only ever slows a round down, so the best rounds are the fairest comparison
    print(f"ratio deconstruct / hand-written: best {max(ours) / max(hand):.3f}, "
          f"median of per-round ratios {statistics.median(ratios):.3f}  (bar: >= 0.95)")
    if comp:
        print(f"ratio deconstruct compiled / hand-written: best {max(comp) / max(hand):.3f}  (goal: >= 1.05)")


if __name__ == "__main__":
    main()
