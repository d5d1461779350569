"""A prepared dataset on disk, and reading it by memory map.

Layout of a dataset directory::

    header.json          # written last: a directory without it is not a dataset
    tokenizer.json       # the tokenizer (not for ``bytes`` or tiktoken)
    tokens-00000.bin     # the token stream, flat little-endian uint16 (uint32 when the vocabulary needs it),
    tokens-00001.bin     # cut into shards of at most ``shard_tokens`` tokens

The header says what the stream is (tokenizer, vocabulary, documents, tokens, bytes per token, sources)
and carries a sha256 per shard and a ``content_hash`` (of the tokenizer and the whole stream) that
identifies the data: two datasets with the same hash hold the same tokens of the same tokenizer.

Opening checks what is cheap: the header, every shard's exact size, and — for a shard modified after the
header was written — its sha256. ``verify()`` re-hashes everything. Any mismatch is a :class:`DataError`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deconstruct._errors import DataError

FORMAT = "deconstruct-tokens/1"
HEADER = "header.json"
TOKENIZER_FILE = "tokenizer.json"
HASH_CHUNK = 1 << 24  # bytes read at a time when hashing
PREPARE_HINT = "prepare it again with `deconstruct data prepare`"


def shard_name(i: int) -> str:
    return f"tokens-{i:05d}.bin"


def partial_dir(out: Path) -> Path:
    """Where an unfinished prepare of ``out`` lives (a sibling, so the final rename is atomic)."""
    return out.with_name(out.name + ".partial")


def file_sha256(path: Path, length: int | None = None) -> str:
    """sha256 of the first ``length`` bytes of ``path`` (all of it when None)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        left = length if length is not None else -1
        while left != 0:
            block = f.read(HASH_CHUNK if left < 0 else min(HASH_CHUNK, left))
            if not block:
                break
            h.update(block)
            left -= len(block) if left > 0 else 0
    return h.hexdigest()


def content_hash(tokenizer_sha: str, dtype: str, stream_sha: str) -> str:
    return hashlib.sha256(f"{FORMAT}\0{tokenizer_sha}\0{dtype}\0{stream_sha}".encode()).hexdigest()


@dataclass
class Header:
    tokenizer: dict[str, Any]  # kind, name, vocab_size, eot, sha256
    vocab_size: int
    dtype: str  # uint16 | uint32
    documents: int
    tokens: int
    bytes: int  # UTF-8 bytes of text the tokens stand for
    shards: list[dict[str, Any]]  # [{file, tokens, sha256}]
    sources: list[dict[str, Any]]  # [{source, files, documents, bytes}]
    content_hash: str
    format: str = FORMAT
    created: str = ""
    deconstruct_version: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def bytes_per_token(self) -> float:
        return self.bytes / max(1, self.tokens)

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "extra"}
        d["bytes_per_token"] = self.bytes_per_token
        return {**d, **self.extra}

    @property
    def identity(self) -> dict[str, Any]:
        """What a run records about its data."""
        return {"hash": self.content_hash, "tokenizer": self.tokenizer["name"],
                "tokenizer_sha256": self.tokenizer["sha256"]}


def read_header(root: Path | str) -> Header:
    """The header of the dataset at ``root``; a missing, unfinished or malformed one is a :class:`DataError`."""
    root = Path(root).expanduser()
    if not root.is_dir():
        if partial_dir(root).is_dir():
            raise DataError(f"{root}: an interrupted prepare ({partial_dir(root).name} is left); run the same "
                            "`deconstruct data prepare` again to resume it")
        raise DataError(f"{root}: no such dataset directory ({PREPARE_HINT})")
    path = root / HEADER
    if not path.is_file():
        raise DataError(f"{root}: not a prepared dataset (no {HEADER}; {PREPARE_HINT})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != FORMAT:
            raise ValueError(f"format {data.get('format')!r}, expected {FORMAT!r}")
        names = set(Header.__dataclass_fields__) - {"extra"}
        data.pop("bytes_per_token", None)
        header = Header(**{k: data.pop(k) for k in list(data) if k in names}, extra=data)
        if header.dtype not in ("uint16", "uint32") or sum(int(s["tokens"]) for s in header.shards) != header.tokens:
            raise ValueError("dtype or shard token counts do not agree with the header")
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise DataError(f"{path}: corrupt header ({exc}; {PREPARE_HINT})") from None
    return header


class Dataset:
    """A prepared dataset, opened read-only. ``tokens`` reads windows across shards without loading them."""

    def __init__(self, root: Path | str, *, check: bool = True):
        self.root = Path(root).expanduser()
        self.header = read_header(self.root)
        self.dtype = np.dtype(self.header.dtype)
        if check:
            self._check_shards(full=False)
        # plain ndarray views of the memory maps: the same pages, without np.memmap's per-index overhead
        self._maps = [np.memmap(self.root / s["file"], dtype=self.dtype, mode="r").view(np.ndarray) if s["tokens"]
                      else np.zeros(0, self.dtype) for s in self.header.shards]
        self._starts = np.cumsum([0] + [len(m) for m in self._maps])

    def __len__(self) -> int:
        return self.header.tokens

    @property
    def vocab_size(self) -> int:
        return self.header.vocab_size

    def _check_shards(self, full: bool) -> None:
        header_mtime = (self.root / HEADER).stat().st_mtime_ns
        for s in self.header.shards:
            path = self.root / s["file"]
            expected = int(s["tokens"]) * self.dtype.itemsize
            if not path.is_file():
                raise DataError(f"{path}: missing shard ({PREPARE_HINT})")
            st = path.stat()
            if st.st_size != expected:
                what = "truncated" if st.st_size < expected else "longer than the header says"
                raise DataError(f"{path}: {what} ({st.st_size} bytes, expected {expected}; {PREPARE_HINT})")
            if (full or st.st_mtime_ns > header_mtime) and file_sha256(path) != s["sha256"]:
                raise DataError(f"{path}: corrupt (its sha256 differs from the header's; {PREPARE_HINT})")

    def verify(self) -> None:
        """Re-hash every shard against the header (raises :class:`DataError`)."""
        self._check_shards(full=True)

    def window(self, start: int, length: int) -> np.ndarray:
        """Tokens ``start … start+length-1`` of the stream (a view when inside one shard)."""
        i = int(np.searchsorted(self._starts, start, side="right")) - 1
        offset = start - int(self._starts[i])
        m = self._maps[i]
        if offset + length <= len(m):
            return m[offset:offset + length]
        parts, left = [m[offset:]], length - (len(m) - offset)
        while left > 0:
            i += 1
            parts.append(self._maps[i][:left])
            left -= len(parts[-1])
        return np.concatenate(parts)

    def windows(self, starts: np.ndarray, length: int) -> np.ndarray:
        """The windows of ``length`` tokens at ``starts``, as one (len(starts), length) array: one gather per
        shard (the rare window that crosses into the next shard is read on its own)."""
        starts = np.asarray(starts, dtype=np.int64)
        out = np.empty((len(starts), length), dtype=self.dtype)
        offsets = np.arange(length)
        if len(self._maps) == 1 and len(starts) and int(starts.max()) + length <= len(self):  # the common case
            return self._maps[0][starts[:, None] + offsets]
        shard = np.searchsorted(self._starts, starts, side="right") - 1
        for i in np.unique(shard):
            rows = np.flatnonzero(shard == i)
            local = starts[rows] - self._starts[i]
            inside = local + length <= len(self._maps[i])
            out[rows[inside]] = self._maps[i][local[inside, None] + offsets]
            for r in rows[~inside]:
                out[r] = self.window(int(starts[r]), length)
        return out


def open_dataset(root: Path | str, *, check: bool = True) -> Dataset:
    return Dataset(root, check=check)
