"""``prepare``: sources → tokens → memory-mappable shards, once.

The work happens in ``OUT.partial/`` beside ``OUT``: the tokenizer, the shards as they grow, and
``progress.json`` (what is being prepared and how far it got, rewritten atomically after every chunk of
documents). The header is written last and the directory then renamed to ``OUT`` in one atomic step, so a
directory that looks like a dataset is always complete. Run the same command again after an interruption and
it resumes from the last finished chunk (shards are cut back to what ``progress.json`` vouches for); inputs
or options that changed since mean a fresh start (``restart=True`` forces one).

Tokenisation runs in ``workers`` processes (forked where the platform can, one tokenizer thread each) with a
bounded number of chunks in flight, results taken in order, so the token stream — and its hash — does not depend on the number
of workers. The ``bytes`` tokenizer has nothing to parallelise and runs in the calling process.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from deconstruct._errors import DataError
from deconstruct.data import _sources
from deconstruct.data._dataset import (
    HEADER,
    TOKENIZER_FILE,
    Header,
    content_hash,
    file_sha256,
    partial_dir,
    read_header,
    shard_name,
)
from deconstruct.data._tokenizers import Tokenizer, bpe_size, dtype_for, load_tokenizer, train_bpe

PROGRESS = "progress.json"
SHARD_TOKENS = 1 << 28  # 512 MiB of uint16 per shard
CHUNK_BYTES = 1 << 20  # documents are tokenised in chunks of about this much text
BPE_SAMPLE_BYTES = 1 << 28  # bpe:N is trained on the first this-many bytes of text


@dataclass
class PrepareOptions:
    sources: list[str]
    out: Path
    tokenizer: str = "bytes"
    text_field: str = "text"
    workers: int = field(default_factory=lambda: min(8, os.cpu_count() or 1))
    shard_tokens: int = SHARD_TOKENS
    chunk_bytes: int = CHUNK_BYTES
    bpe_sample_bytes: int = BPE_SAMPLE_BYTES
    force: bool = False  # replace an existing dataset at ``out``
    restart: bool = False  # discard an interrupted prepare instead of resuming it


@dataclass
class Progress:
    """Reported after every chunk: source bytes read of ``total`` (0: unknown), documents, tokens so far."""

    done: int
    total: int
    documents: int
    tokens: int
    resumed: bool = False


@dataclass
class PrepareResult:
    header: Header
    resumed_chunks: int  # chunks an earlier, interrupted prepare had already done
    seconds: float
    source_bytes: int  # bytes of input read


@dataclass
class _Chunk:
    docs: list[bytes | str]
    position: int  # source bytes read when the chunk closed
    per_source: list[int]  # documents of each source argument in this chunk


def _chunks(groups: list[list[_sources.Source]], text_field: str, chunk_bytes: int) -> Iterator[_Chunk]:
    before = 0
    docs: list[bytes | str] = []
    per_source = [0] * len(groups)
    size = 0
    for g, group in enumerate(groups):
        for src in group:
            for doc, pos in _sources.read(src, text_field):
                docs.append(doc)
                per_source[g] += 1
                size += len(doc)
                if size >= chunk_bytes:
                    yield _Chunk(docs, before + pos, per_source)
                    docs, per_source, size = [], [0] * len(groups), 0
            before += src.size
    if docs:
        yield _Chunk(docs, before, per_source)


def _bpe_texts(groups: list[list[_sources.Source]], text_field: str, limit: int) -> Iterator[str]:
    seen = 0
    for group in groups:
        for src in group:
            for doc, _ in _sources.read(src, text_field):
                text = doc.decode("utf-8", errors="replace") if isinstance(doc, bytes) else doc
                yield text
                seen += len(text)
                if seen >= limit:
                    return


_WORKER_TOKENIZER: Tokenizer | None = None


def _init_worker(tok: Tokenizer) -> None:
    global _WORKER_TOKENIZER
    _WORKER_TOKENIZER = tok


def _encode(docs: list[bytes | str]) -> tuple[np.ndarray, int]:
    assert _WORKER_TOKENIZER is not None
    return _WORKER_TOKENIZER.encode(docs)


@contextmanager
def _one_thread_each() -> Iterator[None]:
    """Workers tokenise one thread each (and ``tokenizers`` does not warn about forking after using threads)."""
    old = os.environ.get("TOKENIZERS_PARALLELISM")
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("TOKENIZERS_PARALLELISM", None)
        else:
            os.environ["TOKENIZERS_PARALLELISM"] = old


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


class _Writer:
    """Appends token arrays to size-capped shards, hashing the stream and each shard as it goes."""

    def __init__(self, root: Path, dtype: np.dtype, shard_tokens: int, state: dict[str, Any]):
        self.root, self.dtype, self.cap = root, dtype, shard_tokens
        self.shards: list[dict[str, Any]] = state["shards"]  # [{file, tokens, sha256 (once closed)}]
        self.stream = hashlib.sha256()
        for i, s in enumerate(self.shards):  # resume: cut shards back to what progress.json vouches for
            path = root / s["file"]
            with open(path, "r+b") as f:
                f.truncate(s["tokens"] * dtype.itemsize)
            with open(path, "rb") as f:
                while block := f.read(1 << 24):
                    self.stream.update(block)
            if i < len(self.shards) - 1 and "sha256" not in s:
                s["sha256"] = file_sha256(path)
        for extra in sorted(root.glob("tokens-*.bin")):
            if extra.name not in {s["file"] for s in self.shards}:
                extra.unlink()
        self.file: Any = None

    def write(self, ids: np.ndarray) -> None:
        ids = np.ascontiguousarray(ids, dtype=self.dtype)
        while len(ids):
            if not self.shards or self.shards[-1]["tokens"] >= self.cap:
                self._close()
                self.shards.append({"file": shard_name(len(self.shards)), "tokens": 0})
            s = self.shards[-1]
            if self.file is None:
                self.file = open(self.root / s["file"], "ab")
            take = ids[: self.cap - s["tokens"]]
            data = take.tobytes()
            self.file.write(data)
            self.stream.update(data)
            s["tokens"] += len(take)
            ids = ids[len(take):]
        if self.file is not None:
            self.file.flush()

    def _close(self) -> None:
        if self.file is not None:
            os.fsync(self.file.fileno())
            self.file.close()
            self.file = None
        if self.shards and "sha256" not in self.shards[-1]:
            self.shards[-1]["sha256"] = file_sha256(self.root / self.shards[-1]["file"])

    def finish(self) -> str:
        self._close()
        return self.stream.hexdigest()


def _plan(opts: PrepareOptions, groups: list[list[_sources.Source]]) -> str:
    """A hash of everything that decides the output (every input file's size and mtime included): a resumed
    prepare must have the same plan."""
    tok_file = Path(opts.tokenizer).expanduser()
    plan = {
        "sources": [[opts.sources[g], [s.identity() for s in group]] for g, group in enumerate(groups)],
        "tokenizer": opts.tokenizer,
        "tokenizer_sha256": file_sha256(tok_file) if tok_file.is_file() else None,
        "text_field": opts.text_field,
        "shard_tokens": opts.shard_tokens,
        "chunk_bytes": opts.chunk_bytes,
        "bpe_sample_bytes": opts.bpe_sample_bytes if bpe_size(opts.tokenizer) else None,
    }
    return hashlib.sha256(json.dumps(plan, sort_keys=True).encode()).hexdigest()


def _check_out(opts: PrepareOptions) -> None:
    out = opts.out
    if (out / HEADER).is_file() and not opts.force:
        try:
            what = f"a prepared dataset ({read_header(out).content_hash[:12]})"
        except DataError:
            what = "a dataset header"
        raise DataError(f"{out} already holds {what}; use --force to replace it, or another --out")
    if out.exists() and not (out / HEADER).is_file() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"{out} exists and is not a prepared dataset; choose another --out")


def _start(opts: PrepareOptions, plan: str, note: Callable[[str], None]) -> tuple[Path, dict[str, Any]]:
    """The partial directory and its state: resumed when the plan matches, else fresh."""
    partial = partial_dir(opts.out)
    if partial.is_dir():
        try:
            state = json.loads((partial / PROGRESS).read_text())
        except (OSError, ValueError):
            state = None
        if state is not None and state.get("plan") == plan and not opts.restart:
            return partial, state
        why = "--restart" if opts.restart else "its inputs or options differ" if state else "it has no progress record"
        note(f"discarding the interrupted prepare in {partial} ({why})")
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    state = {"plan": plan, "chunks": 0, "documents": 0, "tokens": 0, "bytes": 0, "position": 0,
             "per_source": [0] * len(opts.sources), "shards": []}
    _write_json(partial / PROGRESS, state)
    return partial, state


def _tokenizer(opts: PrepareOptions, groups: list[list[_sources.Source]], partial: Path) -> Tokenizer:
    saved = partial / TOKENIZER_FILE
    n = bpe_size(opts.tokenizer)
    if n is not None and saved.is_file():  # resuming: the tokenizer trained before the interruption
        tok = load_tokenizer(str(saved))
        tok.name = opts.tokenizer
        return tok
    tok = train_bpe(n, _bpe_texts(groups, opts.text_field, opts.bpe_sample_bytes)) if n else load_tokenizer(opts.tokenizer)
    if tok.kind == "hf":
        tmp = saved.with_name(saved.name + ".tmp")
        tmp.write_text(tok.spec, encoding="utf-8")
        os.replace(tmp, saved)
    return tok


def prepare(opts: PrepareOptions, on_progress: Callable[[Progress], None] | None = None,
            note: Callable[[str], None] = lambda _: None) -> PrepareResult:
    """Prepare ``opts.sources`` into ``opts.out`` (see the module docstring); returns the header written."""
    start = time.perf_counter()
    opts.out = Path(opts.out).expanduser()
    if not opts.sources:
        raise DataError(f"no sources given ({_sources.SOURCE_HELP})")
    if opts.shard_tokens < 1 or opts.chunk_bytes < 1:
        raise DataError("shard_tokens and chunk_bytes must be positive")
    bpe_size(opts.tokenizer)  # a bad bpe:N fails before any work
    _check_out(opts)
    groups = [_sources.expand(s) for s in opts.sources]
    total = sum(s.size for g in groups for s in g)
    partial, state = _start(opts, _plan(opts, groups), note)
    resumed = state["chunks"]
    if resumed:
        note(f"resuming an interrupted prepare after {state['documents']:,} documents ({state['tokens']:,} tokens)")
    tok = _tokenizer(opts, groups, partial)
    writer = _Writer(partial, dtype_for(tok.vocab_size), opts.shard_tokens, state)

    def commit(chunk: _Chunk, ids: np.ndarray, n_bytes: int) -> None:
        writer.write(ids)
        state["chunks"] += 1
        state["documents"] += len(chunk.docs)
        state["tokens"] += len(ids)
        state["bytes"] += n_bytes
        state["position"] = chunk.position
        state["per_source"] = [a + b for a, b in zip(state["per_source"], chunk.per_source, strict=True)]
        _write_json(partial / PROGRESS, state)
        if on_progress is not None:
            on_progress(Progress(chunk.position, total, state["documents"], state["tokens"], resumed > 0))

    chunks = _chunks(groups, opts.text_field, opts.chunk_bytes)
    for _ in range(resumed):  # already done before the interruption: read past them
        next(chunks, None)
    if opts.workers > 1 and tok.kind != "bytes":
        import multiprocessing

        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        with _one_thread_each(), multiprocessing.get_context(method).Pool(
                opts.workers, initializer=_init_worker, initargs=(tok,)) as pool:
            pending: deque[tuple[_Chunk, Any]] = deque()
            for chunk in chunks:
                pending.append((chunk, pool.apply_async(_encode, (chunk.docs,))))
                if len(pending) >= 2 * opts.workers:
                    done, result = pending.popleft()
                    commit(done, *result.get())
            while pending:
                done, result = pending.popleft()
                commit(done, *result.get())
    else:
        for chunk in chunks:
            commit(chunk, *tok.encode(chunk.docs))
    if state["tokens"] == 0:
        raise DataError(f"the sources hold no text ({', '.join(opts.sources)})")

    stream_sha = writer.finish()
    _write_json(partial / PROGRESS, state)
    header = Header(
        tokenizer=tok.describe(), vocab_size=tok.vocab_size, dtype=writer.dtype.name,
        documents=state["documents"], tokens=state["tokens"], bytes=state["bytes"], shards=state["shards"],
        sources=[{"source": arg, "files": len(group), "documents": n}
                 for arg, group, n in zip(opts.sources, groups, state["per_source"], strict=True)],
        content_hash=content_hash(tok.sha256, writer.dtype.name, stream_sha),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"), deconstruct_version=_version(),
    )
    (partial / PROGRESS).unlink()
    _write_json(partial / HEADER, header.to_dict())  # last: only now does the directory look like a dataset
    _publish(partial, opts.out)
    return PrepareResult(header, resumed, time.perf_counter() - start, total)


def _publish(partial: Path, out: Path) -> None:
    """Rename the finished directory to ``out`` (replacing an old dataset there: --force)."""
    old = None
    if out.exists():
        old = out.with_name(f"{out.name}.old-{os.getpid()}")
        os.replace(out, old)
    os.replace(partial, out)
    if old is not None:
        shutil.rmtree(old)


def _version() -> str:
    from deconstruct import __version__

    return __version__
