"""Every fused kernel's forward+backward throughput on a CUDA GPU, against its baseline:

    softmax (Triton FlashAttention)          vs SDPA
    sigmoid / relu (fused, no normaliser)    vs the eager reference (the mixer's own form)
    window W=128 / biformer (FlexAttention)  vs the dense masked SDPA they replace
    taylor (approximate, chunked linear)     vs the eager chunked PyTorch form (the mixer's own), forward
                                             alone and forward+backward

    python benchmarks/kernel_flops.py                     # B 4, H 16, D 64, T 1024 2048 4096, bf16
    python benchmarks/kernel_flops.py --seq-lens 8192 --dtype fp16

TFLOP/s counts the useful work (causal: half the square; window: T·W keys; biformer: T·top_k·S keys),
4·D FLOPs per query-key pair forward and 2.5× that for the backward, for kernel and baseline alike. Taylor
(queries/keys d = 16 as in Based, values D wide, E = D + 1 with the normaliser) counts per token the
C×C causal chunk, 2·(C+1)/2·(d + E) with C the kernel's chunk (16), plus writing and reading the per-order states,
4·d²·E + 2·d² + 4·d·E + E (the mixer's ``flops_per_token``), the same 2.5× for the backward.
"""

from __future__ import annotations

import argparse
import warnings

import torch
import torch.nn.functional as F

W, S, TOP_K = 128, 64, 4  # window width; biformer region size and regions per query
TAYLOR_D = 16  # Taylor query/key width (Based's)


def time_ms(fn, repeats: int) -> float:
    fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(repeats):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / repeats


def fwd_bwd(impl, q, k, v, do):
    def run():
        out = impl(q, k, v)
        torch.autograd.grad(out, (q, k, v), do)
    return run


def forward_only(impl, q, k, v, do):
    def run():
        with torch.no_grad():
            impl(q, k, v)
    return run


def taylor_rows(B: int, H: int, T: int, DV: int, dtype: torch.dtype, repeats: int) -> None:
    """Forward and forward+backward of the Taylor kernel against the eager chunked form, one row each."""
    from deconstruct.kernels import taylor_attention, taylor_attention_reference
    from deconstruct.kernels.taylor_attention.triton_kernel import BT as chunk

    gen = torch.Generator(device="cuda").manual_seed(0)
    q, k = (torch.randn(B, H, T, TAYLOR_D, device="cuda", dtype=dtype, generator=gen) for _ in range(2))
    v, do = (torch.randn(B, H, T, DV, device="cuda", dtype=dtype, generator=gen) for _ in range(2))
    q, k, v = (t.requires_grad_() for t in (q, k, v))
    d, E, c = TAYLOR_D, DV + 1, (chunk + 1) / 2
    fwd_flops = (2 * c * (d + E) + 4 * d * d * E + 2 * d * d + 4 * d * E + E) * T * B * H
    for name, how, flops in ((f"taylor d={d} fwd", forward_only, fwd_flops), (f"taylor d={d}", fwd_bwd, 3.5 * fwd_flops)):
        try:
            ms = time_ms(how(taylor_attention, q, k, v, do), repeats)
        except Exception as exc:
            print(f"{name:<22} {T:>6}  failed: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}")
            continue
        base_ms = time_ms(how(taylor_attention_reference, q, k, v, do), repeats)
        print(f"{name:<22} {T:>6} {ms:9.3f} {flops / ms / 1e9:8.1f} {'eager chunked':<14} {base_ms:9.3f} "
              f"{flops / base_ms / 1e9:8.1f} {base_ms / ms:6.2f}x", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seq-lens", type=int, nargs="+", default=[1024, 2048, 4096])
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--heads", type=int, default=16)
    p.add_argument("--head-dim", type=int, default=64)
    p.add_argument("--dtype", default="bf16", choices=["bf16", "fp16", "fp32"])
    p.add_argument("--repeats", type=int, default=20)
    args = p.parse_args()
    assert torch.cuda.is_available(), "needs a CUDA device"
    warnings.filterwarnings("ignore")
    from deconstruct.builtin import _flex
    from deconstruct.builtin._biformer import route, routing_mask
    from deconstruct.builtin._window import window_mask
    from deconstruct.kernels import elementwise_attention, elementwise_attention_reference, flash_attention

    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[args.dtype]
    B, H, D = args.batch, args.heads, args.head_dim
    print(f"{torch.cuda.get_device_name()}  torch {torch.__version__}  {args.dtype}  B={B} H={H} D={D}")
    print(f"{'kernel':<22} {'T':>6} {'ms':>9} {'TFLOP/s':>8} {'baseline':<14} {'ms':>9} {'TFLOP/s':>8} {'ratio':>7}")
    for T in args.seq_lens:
        gen = torch.Generator(device="cuda").manual_seed(0)
        q, k, v, do = (torch.randn(B, H, T, D, device="cuda", dtype=dtype, generator=gen) for _ in range(4))
        q, k, v = (t.requires_grad_() for t in (q, k, v))
        window_bm = _flex.window_block_mask(T, W, 1, True, q.device)
        wmask = window_mask(T, W, 1, True, q.device)

        def biformer_flex(q, k, v):
            regions, valid = route(q, k, S, TOP_K, True)
            return _flex.routed_attention(q, k, v, regions, valid, S, True)

        def biformer_dense(q, k, v):
            return F.scaled_dot_product_attention(q, k, v, attn_mask=routing_mask(q, k, S, TOP_K, True))

        causal_pairs = T * (T + 1) / 2
        cases = [
            ("softmax triton", lambda q, k, v: flash_attention(q, k, v, causal=True), "sdpa",
             lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True), causal_pairs),
            ("sigmoid fused", lambda q, k, v: elementwise_attention(q, k, v, "sigmoid"), "eager reference",
             lambda q, k, v: elementwise_attention_reference(q, k, v, "sigmoid"), causal_pairs),
            ("relu fused", lambda q, k, v: elementwise_attention(q, k, v, "relu"), "eager reference",
             lambda q, k, v: elementwise_attention_reference(q, k, v, "relu"), causal_pairs),
            (f"window W={W} flex", lambda q, k, v, bm=window_bm: _flex.window_attention(q, k, v, bm), "dense mask",
             lambda q, k, v, m=wmask: F.scaled_dot_product_attention(q, k, v, attn_mask=m), T * min(W, T)),
            (f"biformer S={S} k={TOP_K} flex", biformer_flex, "dense mask", biformer_dense, T * TOP_K * S),
        ]
        for name, impl, base_name, base, pairs in cases:
            flops = 3.5 * 4 * D * pairs * B * H
            try:
                ms = time_ms(fwd_bwd(impl, q, k, v, do), args.repeats)
            except Exception as exc:  # one line per kernel that fails, the others still run
                print(f"{name:<22} {T:>6}  failed: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}")
                continue
            try:
                base_ms = time_ms(fwd_bwd(base, q, k, v, do), args.repeats)
            except torch.cuda.OutOfMemoryError:
                base_ms = float("nan")
                torch.cuda.empty_cache()
            print(f"{name:<22} {T:>6} {ms:9.3f} {flops / ms / 1e9:8.1f} {base_name:<14} {base_ms:9.3f} "
                  f"{flops / base_ms / 1e9:8.1f} {base_ms / ms:6.2f}x", flush=True)
        taylor_rows(B, H, T, D, dtype, args.repeats)


if __name__ == "__main__":
    main()
