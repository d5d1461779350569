"""Where documents come from: text files, globs, directories, JSON lines, Parquet, the stdlib, Hugging Face.

A source argument is expanded into :class:`Source` items, each of which reads as a stream of documents:

- ``stdlib``: every ``.py`` file of the running Python's standard library (one document per file);
- a text file (any other suffix): the whole file is one document, read as bytes;
- ``*.jsonl`` / ``*.jsonl.gz``: one JSON object per line, the document is its ``text_field``;
- ``*.parquet``: the ``text_field`` column (needs pyarrow: ``pip install deconstruct[parquet]``);
- a directory or a glob: the files it holds, in sorted order, each by its suffix;
- ``hf:NAME`` or ``hf:NAME:SPLIT``: a Hugging Face ``datasets`` dataset (streamed; needs ``datasets``, and
  the data must be available to it).

Reading yields ``(document, position)`` where ``position`` is how many bytes of the source have been read
(for the progress bar).
"""

from __future__ import annotations

import glob
import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deconstruct._errors import DataError

SOURCE_HELP = "a text file, a directory, a glob, .jsonl/.jsonl.gz, .parquet, stdlib, or hf:NAME[:SPLIT]"


@dataclass(frozen=True)
class Source:
    kind: str  # text | jsonl | parquet | hf
    path: str  # a file path, or the datasets name for hf
    size: int = 0  # bytes on disk (0 when unknown)
    mtime_ns: int = 0
    split: str = "train"

    def identity(self) -> list[Any]:
        """What must be unchanged for an interrupted prepare to resume."""
        return [self.kind, self.path, self.size, self.mtime_ns, self.split]


def _file_source(path: Path) -> Source:
    st = path.stat()
    name = path.name.lower()
    kind = "jsonl" if name.endswith((".jsonl", ".jsonl.gz")) else "parquet" if name.endswith(".parquet") else "text"
    return Source(kind, str(path), st.st_size, st.st_mtime_ns)


def expand(arg: str) -> list[Source]:
    """The sources of one command-line argument, in sorted order; one that matches nothing is an error."""
    if arg == "stdlib":
        from deconstruct.tasks._lm import corpus_files

        return [_file_source(p) for p in corpus_files("stdlib")]
    if arg.startswith("hf:"):
        name, _, split = arg[3:].partition(":")
        return [Source("hf", name, split=split or "train")]
    p = Path(arg).expanduser()
    if p.is_dir():
        files = sorted(q for q in p.rglob("*") if q.is_file())
    elif p.is_file():
        files = [p]
    else:
        files = sorted(Path(f) for f in glob.glob(str(p), recursive=True) if Path(f).is_file())
    if not files:
        raise DataError(f"source {arg!r} matches no files ({SOURCE_HELP})")
    return [_file_source(f) for f in files]


def read(source: Source, text_field: str) -> Iterator[tuple[bytes | str, int]]:
    """The documents of ``source`` with the bytes read so far; unreadable input is a :class:`DataError`."""
    if source.kind == "text":
        yield Path(source.path).read_bytes(), source.size
    elif source.kind == "jsonl":
        yield from _jsonl(source.path, text_field)
    elif source.kind == "parquet":
        yield from _parquet(source, text_field)
    else:
        yield from _hf(source, text_field)


def _jsonl(path: str, field: str) -> Iterator[tuple[str, int]]:
    with open(path, "rb") as raw:
        f = gzip.GzipFile(fileobj=raw) if path.lower().endswith(".gz") else raw
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError as exc:
                raise DataError(f"{path}:{number}: not a JSON line ({exc})") from None
            except OSError as exc:  # a damaged gzip stream
                raise DataError(f"{path}: cannot be read ({exc})") from None
            if not isinstance(obj, dict) or not isinstance(obj.get(field), str):
                have = ", ".join(sorted(obj)) if isinstance(obj, dict) else type(obj).__name__
                raise DataError(f"{path}:{number}: no text field {field!r} (it has: {have}; use --text-field)")
            yield obj[field], raw.tell()


def _parquet(source: Source, field: str) -> Iterator[tuple[str, int]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(f"{source.path}: reading Parquet needs pyarrow (pip install 'deconstruct[parquet]')") from None
    try:
        pf = pq.ParquetFile(source.path)
    except Exception as exc:
        raise DataError(f"{source.path}: not a Parquet file ({exc})") from None
    names = pf.schema_arrow.names
    if field not in names:
        raise DataError(f"{source.path}: no column {field!r} (it has: {', '.join(names)}; use --text-field)")
    total, done = max(1, pf.metadata.num_rows), 0
    for batch in pf.iter_batches(columns=[field]):
        for text in batch.column(0).to_pylist():
            done += 1
            if text is not None:
                yield str(text), source.size * done // total


def _hf(source: Source, field: str) -> Iterator[tuple[str, int]]:
    try:
        import datasets
    except ImportError:
        raise DataError(f"hf:{source.path}: Hugging Face sources need the datasets library "
                        "(pip install 'deconstruct[hf]')") from None
    try:
        ds = datasets.load_dataset(source.path, split=source.split, streaming=True)
    except Exception as exc:
        raise DataError(f"hf:{source.path}: cannot be loaded ({str(exc).splitlines()[0]})") from None
    for row in ds:
        if field not in row:
            raise DataError(f"hf:{source.path}: no text field {field!r} (it has: {', '.join(row)}; use --text-field)")
        yield str(row[field]), 0
