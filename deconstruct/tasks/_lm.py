"""Language modelling over real text: bytes of a corpus read on the fly, or a prepared token dataset.

``corpus: stdlib`` (the default) is every ``.py`` file of the running interpreter's standard library
(site-packages excluded), read in sorted path order — the same several MB of real text on every machine with
that Python. ``corpus: PATH_OR_GLOB`` reads the user's own files. The bytes are read once and cached as a
flat uint8 file under ``$DECONSTRUCT_CACHE`` (default ``~/.cache/deconstruct``); sampling a batch is one
gather. Vocabulary 256, bits per byte = loss / ln 2.

``data: DIR`` (replacing ``corpus``) trains on a dataset made by ``deconstruct data prepare``: any tokenizer,
the vocabulary size read from the dataset, tokens read by memory map (never loaded whole), bits per byte
through the dataset's bytes per token. ``eval: {NAME: DIR}`` adds evaluation sets (prepared with the same
tokenizer), scored after training on fixed windows: ``NAME_loss``, ``NAME_perplexity``,
``NAME_bits_per_byte`` (see :func:`deconstruct.metrics.declare_eval_set`).

Split: the token stream is cut into 64 Ki-token blocks (smaller for small corpora, so there are at least four
validation blocks); every 10th block is validation, the rest training — deterministic, disjoint, and both
splits span the whole corpus. An evaluation set is used whole.

Every task records what it read (:attr:`data_identity`): the dataset's content hash and tokenizer, or for a
corpus the hash of its bytes (and, for the stdlib, the Python version).
"""

from __future__ import annotations

import glob
import hashlib
import math
import os
import platform
import re
import sys
import sysconfig
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator, model_serializer, model_validator

from deconstruct._errors import SpecError
from deconstruct.tasks._base import TaskOptions

if TYPE_CHECKING:  # torch is imported on first use: the CLI imports these options at start-up
    import numpy as np
    import torch

BLOCK = 64 * 1024
VAL_EVERY = 10
EVAL_NAME = re.compile(r"[a-z][a-z0-9_]*")
RESERVED_EVAL_NAMES = ("train", "val", "skip")


class CorpusOptions(TaskOptions):
    corpus: str = Field("stdlib", description="stdlib, or a path / glob of text files")
    max_bytes: int | None = Field(None, ge=1024, description="use only the first N bytes of the corpus")

    @property
    def vocab_size(self) -> int:
        return 256


class LMOptions(CorpusOptions):
    data: str | None = Field(None, description="a dataset made by `deconstruct data prepare` (replaces corpus)")
    eval: dict[str, str] = Field(default_factory=dict, description="evaluation sets: {name: prepared dataset}")

    @field_validator("eval")
    @classmethod
    def _eval_names(cls, value: dict[str, str]) -> dict[str, str]:
        from deconstruct.metrics import declare_eval_set

        for name in value:
            if not EVAL_NAME.fullmatch(name) or name in RESERVED_EVAL_NAMES:
                raise ValueError(f"evaluation set name {name!r} must be lower-case letters, digits and _ "
                                 f"(not {', '.join(RESERVED_EVAL_NAMES)})")
            try:
                declare_eval_set(name)
            except ValueError:
                raise ValueError(f"evaluation set name {name!r} would shadow another metric; rename it") from None
        return value

    @model_validator(mode="after")
    def _data_or_corpus(self) -> LMOptions:
        if self.data is not None and self.corpus != "stdlib":
            raise ValueError("give task.data or task.corpus, not both (data replaces corpus)")
        if self.data is not None and self.max_bytes is not None:
            raise ValueError("max_bytes applies to a corpus; prepare a smaller dataset instead")
        return self

    @model_serializer(mode="wrap")
    def _dump(self, handler: Any) -> dict[str, Any]:
        d = handler(self)  # unset data/eval are left out: configurations of corpus runs keep their hash
        if self.data is None:
            d.pop("data", None)
        if not self.eval:
            d.pop("eval", None)
        return dict(d)

    @property
    def vocab_size(self) -> int:
        if self.data is None:
            return 256
        from deconstruct.data import read_header

        return read_header(self.data).vocab_size


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


def _corpus_cache(corpus: str) -> Path:
    """The cached byte file of the corpus (keyed on names, sizes, mtimes), written on first use."""
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
    return cached


def load_corpus(corpus: str, max_bytes: int | None = None) -> torch.Tensor:
    """All bytes of the corpus as a flat uint8 tensor (cached on disk, keyed on names, sizes, mtimes)."""
    import torch

    cached = _corpus_cache(corpus)
    data = torch.from_file(str(cached), shared=False, size=cached.stat().st_size, dtype=torch.uint8)
    return data[:max_bytes] if max_bytes else data


def corpus_identity(corpus: str, max_bytes: int | None = None) -> dict[str, Any]:
    """What a corpus run read: the sha256 of the corpus bytes (cached beside them), the tokenizer (bytes),
    and for the stdlib the Python version it came from."""
    from deconstruct.data._dataset import file_sha256

    cached = _corpus_cache(corpus)
    sidecar = cached.with_suffix(".sha256")
    try:
        digest = sidecar.read_text().strip()
    except OSError:
        digest = file_sha256(cached)
        tmp = sidecar.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(digest)
        os.replace(tmp, sidecar)
    out: dict[str, Any] = {"hash": digest, "tokenizer": "bytes", "corpus": corpus}
    if corpus == "stdlib":
        out["python"] = platform.python_version()
    if max_bytes:
        out["max_bytes"] = max_bytes
    return out


def split_block(n_tokens: int, seq_len: int) -> int:
    """Block length of the train/val split: 64 Ki tokens, smaller for small corpora so that there are always
    at least 4 validation blocks (and never below two windows)."""
    return min(BLOCK, max(2 * (seq_len + 1), n_tokens // (4 * VAL_EVERY)))


def _too_short(name: str, n: int, seq_len: int) -> SpecError:
    return SpecError(f"the {name} split has {n} tokens, fewer than seq_len + 1 = {seq_len + 1}",
                     path="task.seq_len", hint="use a larger corpus or a shorter seq_len")


class ByteLM:
    """Serves random windows of T+1 bytes from the train or validation split (held in memory)."""

    vocab_size = 256
    causal = True

    def __init__(self, options: CorpusOptions):
        import torch

        self.seq_len = options.seq_len
        self.data_identity = corpus_identity(options.corpus, options.max_bytes)
        data = load_corpus(options.corpus, options.max_bytes)
        blocks = list(data.split(split_block(len(data), self.seq_len)))
        is_val = [(i % VAL_EVERY) == VAL_EVERY - 1 for i in range(len(blocks))]
        self.train = torch.cat([b for b, v in zip(blocks, is_val, strict=True) if not v])
        val = [b for b, v in zip(blocks, is_val, strict=True) if v]
        self.val = torch.cat(val) if val else data[:0]
        for name, part in (("train", self.train), ("val", self.val)):
            if len(part) <= self.seq_len + 1:
                raise _too_short(name, len(part), self.seq_len)
        self._offsets = torch.arange(self.seq_len + 1)
        from deconstruct.data import load_tokenizer

        self.evals = EvalSets(getattr(options, "eval", {}), self.seq_len, load_tokenizer("bytes").sha256,
                              self.data_identity)

    @property
    def eval_sets(self) -> tuple[str, ...]:
        return tuple(self.evals.sets)

    def get_batch(self, split: str, batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        import torch

        if split in self.evals.sets:
            return self.evals.get_batch(split, batch_size, generator)
        data = self.train if split == "train" else self.val
        start = torch.randint(len(data) - self.seq_len - 1, (batch_size,), generator=generator)
        window = data[start[:, None] + self._offsets].long()  # (B, T+1)
        return window[:, :-1], window[:, 1:]

    def metrics(self, val_loss: float) -> dict[str, float]:
        return {"bits_per_byte": val_loss / math.log(2), "val_perplexity": _perplexity(val_loss)}

    def eval_metrics(self, name: str, loss: float) -> dict[str, float]:
        return self.evals.metrics(name, loss)

    def fixed_tokens(self, length: int) -> torch.Tensor:
        return self.train[:length].long()


def _perplexity(loss: float) -> float:
    return math.exp(min(loss, 700.0))


class Windows:
    """Uniform random windows of ``length`` tokens that lie inside one of ``runs`` (start, length) of a
    token stream: a window never crosses from a training run into a validation block."""

    def __init__(self, runs: list[tuple[int, int]], length: int):
        import numpy as np

        runs = [(s, n) for s, n in runs if n >= length]
        self.starts = np.array([s for s, _ in runs], dtype=np.int64)
        counts = np.array([n - length + 1 for _, n in runs], dtype=np.int64)
        self.cum = np.cumsum(counts)
        self.total = int(self.cum[-1]) if len(runs) else 0

    def sample(self, n: int, generator: torch.Generator) -> np.ndarray:
        import numpy as np
        import torch

        r = torch.randint(self.total, (n,), generator=generator).numpy()
        i = np.searchsorted(self.cum, r, side="right")
        before = np.where(i > 0, self.cum[i - 1], 0)
        return self.starts[i] + (r - before)


def _batch(dataset: Any, windows: Windows, batch_size: int, seq_len: int, generator: Any) -> tuple[Any, Any]:
    import numpy as np
    import torch

    w = torch.from_numpy(dataset.windows(windows.sample(batch_size, generator), seq_len + 1).astype(np.int64))
    return w[:, :-1], w[:, 1:]  # (B, T), (B, T)


class EvalSets:
    """The named evaluation sets of a run: prepared datasets of the run's tokenizer, read whole."""

    def __init__(self, paths: dict[str, str], seq_len: int, tokenizer_sha: str, identity: dict[str, Any]):
        from deconstruct.data import open_dataset
        from deconstruct.metrics import declare_eval_set

        self.seq_len = seq_len
        self.sets: dict[str, tuple[Any, Windows, dict[str, str]]] = {}
        for name, path in paths.items():
            ds = open_dataset(path)
            if ds.header.tokenizer["sha256"] != tokenizer_sha:
                raise SpecError(f"evaluation set {name!r} ({path}) was prepared with tokenizer "
                                f"{ds.header.tokenizer['name']!r}, not the training data's",
                                path=f"task.eval.{name}", hint="prepare it with --tokenizer set to the training data's")
            windows = Windows([(0, len(ds))], seq_len + 1)
            if windows.total == 0:
                raise _too_short(f"evaluation set {name!r}", len(ds), seq_len)
            self.sets[name] = (ds, windows, declare_eval_set(name))
            identity.setdefault("eval", {})[name] = ds.header.content_hash

    def get_batch(self, name: str, batch_size: int, generator: Any) -> tuple[Any, Any]:
        ds, windows, _ = self.sets[name]
        return _batch(ds, windows, batch_size, self.seq_len, generator)

    def metrics(self, name: str, loss: float) -> dict[str, float]:
        ds, _, names = self.sets[name]
        return {names["loss"]: loss, names["perplexity"]: _perplexity(loss),
                names["bits_per_byte"]: loss / math.log(2) / ds.header.bytes_per_token}


class DatasetLM:
    """Serves windows of a prepared dataset (``task.data``), read by memory map: training windows from the
    training blocks, validation windows from the validation blocks (see the module docstring)."""

    causal = True

    def __init__(self, options: LMOptions):
        from deconstruct.data import open_dataset

        assert options.data is not None
        self.seq_len = T = options.seq_len
        self.data = open_dataset(options.data)
        header = self.data.header
        self.vocab_size = header.vocab_size
        self.data_identity: dict[str, Any] = dict(header.identity)
        n, block = len(self.data), split_block(len(self.data), T)
        starts = range(0, n, block)
        train_runs = [(s, min(block * (VAL_EVERY - 1), n - s)) for s in starts[::VAL_EVERY]]
        val_runs = [(s, min(block, n - s)) for s in starts[VAL_EVERY - 1::VAL_EVERY]]
        self.windows = {"train": Windows(train_runs, T + 1), "val": Windows(val_runs, T + 1)}
        for name, w in self.windows.items():
            if w.total == 0:
                raise _too_short(name, sum(r[1] for r in (train_runs if name == "train" else val_runs)), T)
        self.evals = EvalSets(options.eval, T, header.tokenizer["sha256"], self.data_identity)

    @property
    def eval_sets(self) -> tuple[str, ...]:
        return tuple(self.evals.sets)

    def get_batch(self, split: str, batch_size: int, generator: Any) -> tuple[Any, Any]:
        if split in self.evals.sets:
            return self.evals.get_batch(split, batch_size, generator)
        return _batch(self.data, self.windows[split], batch_size, self.seq_len, generator)

    def metrics(self, val_loss: float) -> dict[str, float]:
        return {"bits_per_byte": val_loss / math.log(2) / self.data.header.bytes_per_token,
                "val_perplexity": _perplexity(val_loss)}

    def eval_metrics(self, name: str, loss: float) -> dict[str, float]:
        return self.evals.metrics(name, loss)

    def fixed_tokens(self, length: int) -> Any:
        import torch

        return torch.from_numpy(self.data.window(0, min(length, len(self.data))).astype("int64"))


def build_lm(options: LMOptions) -> ByteLM | DatasetLM:
    """The ``lm`` task: a prepared dataset when ``data`` is given, else the bytes of the corpus."""
    return ByteLM(options) if options.data is None else DatasetLM(options)
