"""``deconstruct bench attention``: kernel/backend throughput table on this machine."""

from __future__ import annotations

import typer

from deconstruct.cli._common import TableFormat, print_json, stderr, stdout

bench_app = typer.Typer(help="Measure speed on this machine.", no_args_is_help=True)


@bench_app.command("attention")
def bench_attention(
    device: str = typer.Option(None, "--device", help="cpu or cuda (default: cuda if available)."),
    seq_len: list[int] = typer.Option(None, "--seq-len", "-T", help="Sequence lengths (repeatable)."),
    batch: int = typer.Option(None, "--batch", help="Batch size (default 2 on CPU, 4 on CUDA)."),
    heads: int = typer.Option(8, "--heads"),
    head_dim: int = typer.Option(64, "--head-dim"),
    dtype: str = typer.Option(None, "--dtype", help="float32 | bf16 | fp16 (default: bf16 on CUDA, float32 on CPU)."),
    backend: list[str] = typer.Option(None, "--backend", "-b", help="eager | sdpa | compile | triton (repeatable)."),
    repeats: int = typer.Option(5, "--repeats"),
    variants: bool = typer.Option(False, "--variants", help="Time every token mixer (one layer each) instead of the kernels."),
    variant: list[str] = typer.Option(None, "--variant", "-v", help="Time this token mixer (repeatable); implies --variants."),
    d_model: int = typer.Option(64, "--d-model", help="Width of the layer timed with --variants."),
    format: TableFormat = typer.Option(TableFormat.table, "--format", "-f"),
) -> None:
    """Time forward+backward attention per backend (eager, sdpa, compile, triton) and check its error;
    with --variants, every token mixer × backend × length (a backend that cannot run here says why).

    \b
    Examples:
      deconstruct bench attention
      deconstruct bench attention -T 1024 -T 4096 --device cuda --dtype bf16
      deconstruct bench attention -b eager -b sdpa --format json
      deconstruct bench attention --variants -T 512 -T 2048          # every token mixer × backend
      deconstruct bench attention -v window -v biformer --format json
    """
    import torch

    from deconstruct.kernels import benchmark_attention

    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    cpu = dev.type == "cpu"
    if variants or variant:
        _bench_variants(variant or None, backend or None, seq_len or ([256, 1024] if cpu else [1024, 4096]), dev,
                        batch or (1 if cpu else 4), d_model, heads, repeats, format)
        return
    lens = seq_len or ([128, 256, 512] if cpu else [1024, 2048, 4096, 8192])
    with stderr.status(f"timing attention backends on {dev} …"):
        rows = benchmark_attention(
            device=dev, seq_lens=lens, batch=batch or (2 if cpu else 4), heads=heads, head_dim=head_dim,
            dtype=dtype, backends=backend or None, repeats=repeats,
        )
    if format == TableFormat.json:
        print_json(rows)
        return
    from rich.markup import escape
    from rich.table import Table

    eager = {r["seq_len"]: r["ms_fwd_bwd"] for r in rows if r["backend"] == "eager" and r["ms_fwd_bwd"]}
    table = Table(title=f"attention fwd+bwd on {dev}, B×H×D = {batch or (2 if cpu else 4)}×{heads}×{head_dim}", title_justify="left")
    for col in ("backend", "T", "ms", "tokens/s", "TFLOP/s", "max err", "vs eager"):
        table.add_column(col, justify="right" if col not in ("backend",) else "left")
    missing: dict[str, str] = {}
    for r in rows:
        if r.get("error"):
            missing.setdefault(r["backend"], r["error"])
            continue
        speedup = eager.get(r["seq_len"], 0) / r["ms_fwd_bwd"] if eager.get(r["seq_len"]) else float("nan")
        table.add_row(r["backend"], str(r["seq_len"]), f"{r['ms_fwd_bwd']:.2f}", f"{r['tokens_per_s']:,.0f}",
                      f"{r['tflops']:.3f}", f"{r['max_abs_err_vs_reference']:.1e}", f"{speedup:.2f}×")
    stdout.print(table)
    for name, why in missing.items():
        stdout.print(f"{name}: not run — {escape(why)}", soft_wrap=True)


def _bench_variants(variants, backends, lens, dev, batch, d_model, heads, repeats, format) -> None:
    from rich.markup import escape
    from rich.table import Table

    from deconstruct.model import MIXER_BENCH_BACKENDS, benchmark_mixers

    with stderr.status(f"timing token mixers on {dev} …"):
        rows = benchmark_mixers(variants, backends or MIXER_BENCH_BACKENDS, lens, dev, batch, d_model, heads, repeats)
    if format == TableFormat.json:
        print_json(rows)
        return
    table = Table(title=f"token mixer fwd+bwd on {dev}, one layer, B×d×h = {batch}×{d_model}×{heads}",
                  title_justify="left")
    for col in ("variant", "backend", "runs", "T", "ms", "tokens/s"):
        table.add_column(col, justify="right" if col in ("T", "ms", "tokens/s") else "left")
    missing: dict[tuple[str, str], str] = {}  # (variant, backend) → why it did not run, said once below
    for r in rows:
        if r["error"]:
            missing.setdefault((r["variant"], r["backend"]), r["error"])
            continue
        table.add_row(escape(r["variant"]), r["backend"], escape(r["runs"]), str(r["seq_len"]),
                      f"{r['ms_fwd_bwd']:.2f}", f"{r['tokens_per_s']:,.0f}")
    stdout.print(table)
    for (variant, backend), why in missing.items():
        stdout.print(f"{escape(variant)} / {backend}: not run — {escape(why)}", soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.add_typer(bench_app, name="bench")
