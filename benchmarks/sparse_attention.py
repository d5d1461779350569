"""Sparse attention at its real cost: ``window`` and ``biformer`` blocked (backend auto on the CPU) vs the
dense masked reference (backend sdpa), forward+backward of the attention, then a whole training step.

    python benchmarks/sparse_attention.py                      # T = 512 … 4096, and the 4-layer step at 2048
    python benchmarks/sparse_attention.py --seq-lens 512 1024 --repeats 2 --no-step

Attention rows: q, k, v (B, H, T, D) → output, backward to q, k, v; biformer non-causal (its causal routing
is per token, and ``auto`` keeps the dense path there on the CPU), routing included on both
sides. Step rows: one optimizer step of a 4-layer window model (4 heads, d = --step-d-model, 64 as in the
quickstart) through deconstruct's own model and AdamW, batch --step-batch at T = --step-len. Prints medians and the ratio dense / blocked.
"""

from __future__ import annotations

import argparse
import statistics
import time
from functools import partial

import torch
import torch.nn.functional as F

from deconstruct.builtin import _blocked
from deconstruct.builtin._biformer import route, routing_mask
from deconstruct.builtin._window import window_mask


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def window_dense(q, k, v, W):
    T = q.shape[-2]
    F.scaled_dot_product_attention(q, k, v, attn_mask=window_mask(T, W, 1, True)).sum().backward()


def window_blocked(q, k, v, W):
    _blocked.window_attention(q, k, v, W, 1, True).sum().backward()


def biformer_dense(q, k, v, S, top_k):
    F.scaled_dot_product_attention(q, k, v, attn_mask=routing_mask(q, k, S, top_k, False)).sum().backward()


def biformer_blocked(q, k, v, S, top_k):
    regions, _ = route(q, k, S, top_k, False)
    _blocked.routed_attention(q, k, v, regions, S).sum().backward()


def attention_rows(args) -> None:
    gen = torch.Generator().manual_seed(0)
    W, S, top_k = args.window, args.region, args.top_k
    for T in args.seq_lens:
        q, k, v = (torch.randn(args.batch, args.heads, T, args.head_dim, generator=gen).requires_grad_() for _ in range(3))
        for name, dense, blocked in ((f"window W={W} causal", partial(window_dense, q, k, v, W),
                                      partial(window_blocked, q, k, v, W)),
                                     (f"biformer S={S} k={top_k} non-causal", partial(biformer_dense, q, k, v, S, top_k),
                                      partial(biformer_blocked, q, k, v, S, top_k))):
            d, b = timed(dense, args.repeats), timed(blocked, args.repeats)
            print(f"{name:<30} T={T:>5}  dense {d:9.1f} ms  blocked {b:9.1f} ms  {d / b:6.2f}x", flush=True)


def train_step(model, opt, x) -> None:
    loss = F.cross_entropy(model(x).flatten(0, 1), x.flatten())
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def step_rows(args) -> None:
    from deconstruct.model import build_model
    from deconstruct.spec import load_spec
    from deconstruct.train import make_optimizer

    T = args.step_len
    times = {}
    for backend in ("sdpa", "auto"):  # sdpa: the dense masked reference; auto: blocked
        spec = {"name": "step", "task": {"name": "lm", "corpus": "stdlib", "seq_len": T, "max_bytes": 200_000},
                "model": {"d_model": args.step_d_model, "layers": 4, "heads": 4, "backend": backend,
                          "mixer": {"kind": "window", "size": args.window}},
                "train": {"batch_size": args.step_batch}}
        resolved = load_spec(spec)
        torch.manual_seed(0)
        model = build_model(resolved)
        opt = make_optimizer(model, resolved.spec.train, torch.device("cpu"))
        x = torch.randint(0, 256, (args.step_batch, T))
        ms = times[backend] = timed(partial(train_step, model, opt, x), args.repeats)
        print(f"4-layer window W={args.window} step, d={args.step_d_model} T={T} B={args.step_batch}, backend {backend:<4} "
              f"({model.backends('cpu')[0]}): {ms:9.1f} ms", flush=True)
    print(f"4-layer window step: dense / blocked = {times['sdpa'] / times['auto']:.2f}x (target >= 3 at T = 2048)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seq-lens", type=int, nargs="+", default=[512, 1024, 2048, 4096])
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--head-dim", type=int, default=64)
    p.add_argument("--window", type=int, default=128)
    p.add_argument("--region", type=int, default=64)
    p.add_argument("--top-k", type=int, default=4)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--step-len", type=int, default=2048)
    p.add_argument("--step-batch", type=int, default=2)
    p.add_argument("--step-d-model", type=int, default=64, help="width of the step's model (64: the quickstart's)")
    p.add_argument("--no-attention", action="store_true", help="only the training step")
    p.add_argument("--no-step", action="store_true")
    args = p.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, B={args.batch} H={args.heads} D={args.head_dim}")
    if not args.no_attention:
        attention_rows(args)
    if not args.no_step:
        step_rows(args)


if __name__ == "__main__":
    main()
