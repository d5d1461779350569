"""How the sub-quadratic mixers' cost grows with T: full attention (dense eager reference and SDPA) against
combiner, sparsifiner, rectified block-sparse, span_search and window, forward (+ backward with --backward).

    python benchmarks/bench_coverage.py                                  # T = 512 … 4096 on the CPU
    python benchmarks/bench_coverage.py --device cuda --seq-lens 1024 2048 4096 8192 --backward

Prints, per mixer and T, the median time, the time ratio to the previous (doubled) T — 4.0 is quadratic
growth, 2.83 is T^1.5, 2.0 linear — and the mixer's analytic FLOPs/token ratio likewise. Block sizes are the
defaults (⌈√T⌉ for combiner, rectified and span_search), so their cost is O(T√T) by construction.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

MIXERS = {  # name → (registered mixer, options)
    "full (eager)": ("attention", {}),
    "full (sdpa)": ("attention", {}),
    "combiner": ("combiner", {}),
    "combiner axial": ("combiner", {"factorization": "axial"}),
    "sparsifiner k=64": ("sparsifiner", {"top_k": 64, "block": 16, "basis": 2}),
    "rectified k=4": ("rectified", {"top_k": 4}),
    "span_search k=4": ("span_search", {"top_k": 4}),
    "window w=64": ("window", {"size": 64}),
}


def build(name: str, options: dict, T: int, d: int, heads: int, device: torch.device, backend: str):
    from deconstruct.plugins import get_registry
    from deconstruct.spec import MixerContext

    entry = get_registry().get("mixer", name)
    ctx = MixerContext(d_model=d, heads=heads, layer_index=0, n_layers=1, max_seq_len=T, causal=True,
                       positions="learned", backend=backend)
    opts = entry.options(**options)
    opts.check(ctx)
    torch.manual_seed(0)
    return entry.make(ctx, opts).to(device)


def time_it(module, x, backward: bool, repeats: int) -> float:
    def once():
        if backward:
            x.grad = None
            module(x).sum().backward()
        else:
            with torch.no_grad():
                module(x)
        if x.device.type == "cuda":
            torch.cuda.synchronize()

    once()  # warm-up
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        once()
        out.append(time.perf_counter() - t0)
    return statistics.median(out) * 1e3


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seq-lens", type=int, nargs="+", default=[512, 1024, 2048, 4096])
    parser.add_argument("--d-model", type=int, default=64)
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backward", action="store_true", help="time forward + backward")
    parser.add_argument("--mixers", nargs="+", default=list(MIXERS), help=f"subset of: {', '.join(MIXERS)}")
    args = parser.parse_args(argv)
    device = torch.device(args.device)

    print(f"mixer {'fwd+bwd' if args.backward else 'forward'} on {device}, batch={args.batch} d_model={args.d_model} "
          f"heads={args.heads}, causal, median of {args.repeats}; ×prev: ratio to the previous T (4.0 quadratic, 2.8 T^1.5)")
    header = f"{'mixer':<18} {'T':>6} {'ms':>10} {'×prev':>7} {'FLOPs/token':>12} {'×prev':>7}"
    print(header)
    print("-" * len(header))
    for label in args.mixers:
        name, options = MIXERS[label]
        prev_ms = prev_f = None
        for T in args.seq_lens:
            backend = "eager" if label == "full (eager)" else "sdpa"
            m = build(name, options, T, args.d_model, args.heads, device, backend)
            x = torch.randn(args.batch, T, args.d_model, device=device, requires_grad=args.backward)
            ms = time_it(m, x, args.backward, args.repeats)
            flops = m.flops_per_token(T) - 2 * sum(p.numel() for p in m.parameters())  # the mixing part
            r_ms = f"{ms / prev_ms:.2f}" if prev_ms else "-"
            r_f = f"{flops / prev_f:.2f}" if prev_f else "-"
            print(f"{label:<18} {T:>6} {ms:>10.2f} {r_ms:>7} {flops:>12,} {r_f:>7}", flush=True)
            prev_ms, prev_f = ms, flops


if __name__ == "__main__":
    main()
