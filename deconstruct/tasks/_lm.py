"""Byte-level language modelling (vocabulary 256) over real text.

``corpus: stdlib`` is every ``.py`` file of the running interpreter's standard library (site-packages
excluded), read in sorted path order — the same several MB of real text on every machine with that Python.
``corpus: PATH_OR_GLOB`` reads the user's own files. The bytes are read once and cached as a flat uint8
file under ``$DECONSTRUCT_CACHE`` (default ``~/.cache/deconstruct``); sampling a batch is one gather.

Split: the byte stream is cut into 64 KiB blocks (smaller for small corpora, so there are at least four
validation blocks); every 10th block is validation, the rest training — deterministic, disjoint, and both
splits span the whole corpus.
"""

from __future__ import annotations

import glob
import hashlib
import math
import os
import sys
import sysconfig
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field

from deconstruct._errors import SpecError
from deconstruct.tasks._base import TaskOptions

if TYPE_CHECKING:  # torch is imported on first use: the CLI imports these options at start-up
    import torch

BLOCK = 64 * 1024
VAL_EVERY = 10


class LMOptions(TaskOptions):
    corpus: str = Field("stdlib", description="stdlib, or a path / glob of text files")
    max_bytes: int | None = Field(None, ge=1024, description="use only the first N bytes of the corpus")

    @property
    def vocab_size(self) -> int:
        return 256


def corpus_files(corpus: str) -> list[Path]:
    """The files of a corpus, in sorted order."""
    if corpus == "stdlib":
        root = Path(sysconfig.get_paths()["stdlib"])
        skip = {"site-packages", "dist-packages"}
        return sorted(p for p in root.rglob("*.py") if not skip & set(p.relative_to(root).parts))
    p = Path(corpus).expanduser()
    if p.is_dir():
        return sorted(q for q in p.rglob("*") if q.is_file())
    if p.is_file():
        return [p]
    return sorted(Path(f) for f in glob.glob(str(p), recursive=True) if Path(f).is_file())


def _files_or_error(corpus: str) -> list[Path]:
    files = corpus_files(corpus)
    if not files:
        raise SpecError(f"corpus {corpus!r} matches no files", path="task.corpus", hint="use stdlib, a directory, a file or a glob")
    return files


def cache_dir() -> Path:
    """``$DECONSTRUCT_CACHE``, else ``$XDG_CACHE_HOME/deconstruct`` or ``~/.cache/deconstruct``; the system
    temporary directory when that cannot be created (a read-only or missing home)."""
    if "DECONSTRUCT_CACHE" in os.environ:
        return Path(os.environ["DECONSTRUCT_CACHE"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "deconstruct"
    try:
        base.mkdir(parents=True, exist_ok=True)
        return base
    except OSError:
        import tempfile

        return Path(tempfile.gettempdir()) / "deconstruct-cache"


def load_corpus(corpus: str, max_bytes: int | None = None) -> torch.Tensor:
    """All bytes of the corpus as a flat uint8 tensor (cached on disk, keyed on names, sizes, mtimes)."""
    import torch

    key = hashlib.sha256()
    if corpus == "stdlib":  # the interpreter's own library: keyed on its path and version, not re-walked
        key.update(f"stdlib\0{sysconfig.get_paths()['stdlib']}\0{sys.version}".encode())
        files = None
    else:
        files = _files_or_error(corpus)
        for f in files:
            st = f.stat()
            key.update(f"{f}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    cached = cache_dir() / f"corpus-{key.hexdigest()[:20]}.u8"
    if not cached.exists():
        files = files if files is not None else _files_or_error(corpus)
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(f".tmp{os.getpid()}")
        with open(tmp, "wb") as out:
            for f in files:
                out.write(f.read_bytes())
        os.replace(tmp, cached)  # atomic: concurrent workers never see a half-written cache
    data = torch.from_file(str(cached), shared=False, size=cached.stat().st_size, dtype=torch.uint8)
    return data[:max_bytes] if max_bytes else data


class ByteLM:
    """Serves random windows of T+1 bytes from the train or validation split."""

    vocab_size = 256
    causal = True

    def __init__(self, options: LMOptions):
        import torch

        self.seq_len = options.seq_len
        data = load_corpus(options.corpus, options.max_bytes)
        # small corpora get smaller blocks, so that there are always at least 4 validation blocks
        block = min(BLOCK, max(2 * (self.seq_len + 1), len(data) // (4 * VAL_EVERY)))
        blocks = list(data.split(block))
        is_val = [(i % VAL_EVERY) == VAL_EVERY - 1 for i in range(len(blocks))]
        self.train = torch.cat([b for b, v in zip(blocks, is_val, strict=True) if not v])
        val = [b for b, v in zip(blocks, is_val, strict=True) if v]
        self.val = torch.cat(val) if val else data[:0]
        for name, part in (("train", self.train), ("val", self.val)):
            if len(part) <= self.seq_len + 1:
                raise SpecError(
                    f"the {name} split has {len(part)} bytes, fewer than seq_len + 1 = {self.seq_len + 1}",
                    path="task.seq_len",
                    hint="use a larger corpus or a shorter seq_len",
                )
        self._offsets = torch.arange(self.seq_len + 1)

    def get_batch(self, split: str, batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        import torch

        data = self.train if split == "train" else self.val
        start = torch.randint(len(data) - self.seq_len - 1, (batch_size,), generator=generator)
        window = data[start[:, None] + self._offsets].long()  # (B, T+1)
        return window[:, :-1], window[:, 1:]

    def metrics(self, val_loss: float) -> dict[str, float]:
        return {"bits_per_byte": val_loss / math.log(2)}

    def fixed_tokens(self, length: int) -> torch.Tensor:
        return self.train[:length].long()

