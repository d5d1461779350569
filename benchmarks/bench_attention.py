"""Benchmark attention forward+backward: eager vs SDPA vs torch.compile vs the Triton kernel.

    python benchmarks/bench_attention.py                          # CUDA if present, else a small CPU run
    python benchmarks/bench_attention.py --device cuda --seq-lens 1024 2048 4096 --dtype bf16

Prints one row per (backend, sequence length) and each backend's speed relative to eager.
"""

from __future__ import annotations

import argparse

import torch

from deconstruct.kernels import benchmark_attention


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    parser.add_argument("--seq-lens", type=int, nargs="+", default=None, help="sequence lengths to time")
    parser.add_argument(
        "--dtype", default=None, help="float32 / float16 / bfloat16 (default: bf16 on cuda, fp32 on cpu)"
    )
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--heads", type=int, default=None)
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--backends", nargs="+", default=None, help="subset of: eager sdpa compile triton")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--no-causal", action="store_true", help="full (non-causal) attention")
    args = parser.parse_args(argv)

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    on_cpu = device.type == "cpu"
    # the CPU defaults keep the whole run under a minute on a laptop
    seq_lens = args.seq_lens or ([128, 256] if on_cpu else [256, 512, 1024, 2048])
    batch = args.batch or (2 if on_cpu else 4)
    heads = args.heads or (4 if on_cpu else 8)
    repeats = args.repeats or (3 if on_cpu else 20)

    rows = benchmark_attention(
        device=device,
        seq_lens=seq_lens,
        batch=batch,
        heads=heads,
        head_dim=args.head_dim,
        dtype=args.dtype,
        backends=args.backends,
        repeats=repeats,
        causal=not args.no_causal,
    )

    from deconstruct.kernels.benchmark import resolve_dtype

    dtype = resolve_dtype(args.dtype, device)
    where = f"{device} ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else str(device)
    print(
        f"attention fwd+bwd on {where}, "
        f"{dtype}, batch={batch} heads={heads} head_dim={args.head_dim} causal={not args.no_causal}, "
        f"median of {repeats}"
    )
    eager_ms = {r["seq_len"]: r["ms_fwd_bwd"] for r in rows if r["backend"] == "eager"}
    header = (
        f"{'backend':<8} {'T':>6} {'ms':>9} {'tokens/s':>11} {'TFLOP/s':>8} {'max err':>9} {'vs eager':>9}"
    )
    print(header)
    print("-" * len(header))
    errors = {}
    for r in rows:
        if r["error"]:
            errors[r["backend"]] = r["error"]
            print(f"{r['backend']:<8} {r['seq_len']:>6}  skipped")
            continue
        base = eager_ms.get(r["seq_len"])
        ratio = f"{base / r['ms_fwd_bwd']:.2f}x" if base else "-"
        print(
            f"{r['backend']:<8} {r['seq_len']:>6} {_fmt(r['ms_fwd_bwd'], '9.2f')} {_fmt(r['tokens_per_s'], '11.0f')} "
            f"{_fmt(r['tflops'], '8.3f')} {_fmt(r['max_abs_err_vs_reference'], '9.1e')} {ratio:>9}"
        )
    for backend, reason in errors.items():
        print(f"note: {backend} skipped: {reason}")


if __name__ == "__main__":
    main()
