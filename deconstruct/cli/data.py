"""``deconstruct data``: prepare a tokenised, memory-mapped dataset once; inspect one."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer

from deconstruct.cli._common import TextFormat, print_json, stderr
from deconstruct.metrics import human

data_app = typer.Typer(help="Prepare tokenised datasets (memory-mapped, identified by hash) and inspect them.",
                       no_args_is_help=True)

PLAIN_EVERY = 10.0  # seconds between progress lines when stderr is not a terminal


class _Reporter:
    """Prepare progress on stderr: a rich bar on a terminal, else a plain line every few seconds."""

    def __init__(self) -> None:
        self.bar: Any = None
        self.task: Any = None
        self.last = 0.0
        self.start = time.perf_counter()

    def __enter__(self) -> _Reporter:
        if stderr.is_terminal:
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TransferSpeedColumn,
            )

            self.bar = Progress(TextColumn("[bold]prepare"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                                TextColumn("{task.fields[tokens]} tokens"), TimeElapsedColumn(), console=stderr)
            self.bar.__enter__()
            self.task = self.bar.add_task("prepare", total=None, tokens="0")
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)

    def __call__(self, p: Any) -> None:
        if self.bar is not None:
            self.bar.update(self.task, completed=p.done, total=p.total or None, tokens=human(p.tokens))
            return
        now = time.perf_counter()
        if now - self.last >= PLAIN_EVERY or (p.total and p.done >= p.total):
            self.last = now
            share = f"{100 * p.done / p.total:.0f}% " if p.total else ""
            mb_s = p.done / 1e6 / max(now - self.start, 1e-9)
            typer.echo(f"prepare: {share}{p.done / 1e6:.1f} MB read, {p.documents:,} documents, "
                       f"{p.tokens:,} tokens ({mb_s:.1f} MB/s)", err=True)

    def note(self, line: str) -> None:
        if self.bar is not None:
            self.bar.console.print(f"note: {line}", markup=False)
        else:
            typer.echo(f"note: {line}", err=True)


@data_app.command("prepare")
def prepare_command(
    sources: list[str] = typer.Argument(..., metavar="SOURCE...", help=(
        "Text files, directories, globs, .jsonl/.jsonl.gz, .parquet, stdlib (the Python standard library), "
        "or hf:NAME[:SPLIT] (needs the datasets library).")),
    out: Path = typer.Option(..., "--out", "-o", help="Dataset directory to create."),
    tokenizer: str = typer.Option("bytes", "--tokenizer", "-t", help=(
        "bytes (one token per byte), bpe:N (train a byte-level BPE of N tokens on the sources), a "
        "tokenizer.json file (or a prepared dataset directory: reuse its tokenizer), or a tiktoken name.")),
    text_field: str = typer.Option("text", "--text-field", help="JSON field / Parquet column holding the text."),
    workers: int = typer.Option(None, "--workers", "-j", min=1, help="Tokenisation processes (default: CPUs, ≤ 8)."),
    shard_tokens: int = typer.Option(1 << 28, "--shard-tokens", min=1, help="Tokens per shard file."),
    force: bool = typer.Option(False, "--force", help="Replace a dataset already at --out."),
    restart: bool = typer.Option(False, "--restart", help="Discard an interrupted prepare instead of resuming it."),
    format: TextFormat = typer.Option(TextFormat.text, "--format", "-f", help="text or json (the header)"),
) -> None:
    """Tokenise SOURCES once into a memory-mapped dataset at --out (resumes an interrupted run).

    \b
    Examples:
      deconstruct data prepare stdlib --out data/stdlib-bytes
      deconstruct data prepare ~/corpora/owt/*.jsonl --text-field text --tokenizer bpe:16384 --out data/owt-bpe16k
      deconstruct data prepare wikitext.parquet --tokenizer data/owt-bpe16k/tokenizer.json --out data/wt103-val
    """
    from deconstruct.data import PrepareOptions, prepare

    opts = PrepareOptions(list(sources), out, tokenizer=tokenizer, text_field=text_field, shard_tokens=shard_tokens,
                          force=force, restart=restart)
    if workers is not None:
        opts.workers = workers
    try:
        with _Reporter() as reporter:
            result = prepare(opts, on_progress=reporter, note=reporter.note)
    except KeyboardInterrupt:
        typer.echo(f"note: {out} is not written; run the same command again to resume", err=True)
        raise
    mb_s = result.source_bytes / 1e6 / max(result.seconds, 1e-9)
    typer.echo(f"prepared {out} in {result.seconds:.1f} s ({mb_s:.1f} MB/s of input)", err=True)
    _show(out, result.header, format)


@data_app.command("info")
def info_command(
    path: Path = typer.Argument(..., help="A dataset directory made by `deconstruct data prepare`."),
    verify: bool = typer.Option(False, "--verify", help="Re-hash every shard against the header."),
    format: TextFormat = typer.Option(TextFormat.text, "--format", "-f", help="text or json"),
) -> None:
    """Tokens, vocabulary, tokenizer, bytes per token and content hash of a prepared dataset.

    \b
    Examples:
      deconstruct data info data/owt-bpe16k
      deconstruct data info data/owt-bpe16k --verify --format json
    """
    from deconstruct.data import open_dataset

    ds = open_dataset(path)
    if verify:
        ds.verify()
    _show(path, ds.header, format)


def _show(path: Path, header: Any, format: TextFormat) -> None:
    data = {"path": str(path), **header.to_dict()}
    if format == TextFormat.json:
        print_json(data)
        return
    tok = header.tokenizer
    rows = [
        ("dataset", str(path)),
        ("tokenizer", f"{tok['name']} ({tok['kind']})"),
        ("vocab size", f"{header.vocab_size:,} ({header.dtype})"),
        ("documents", f"{header.documents:,}"),
        ("tokens", f"{header.tokens:,}"),
        ("bytes", f"{header.bytes:,}"),
        ("bytes / token", f"{header.bytes_per_token:.3f}"),
        ("shards", str(len(header.shards))),
        ("sources", "; ".join(f"{s['source']} ({s['documents']:,} docs)" for s in header.sources)),
        ("content hash", header.content_hash),
    ]
    for key, value in rows:  # plain lines: the hash is never cut, and grep finds every field
        typer.echo(f"{key:<14} {value}")


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
