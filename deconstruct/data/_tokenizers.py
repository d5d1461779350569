"""Tokenizers a dataset can be prepared with: ``bytes``, ``bpe:N``, a ``tokenizer.json`` file, a tiktoken name.

``bytes`` is today's behaviour: one token per UTF-8 byte (vocabulary 256), documents concatenated with no
separator, so bits per byte is loss / ln 2 exactly. ``bpe:N`` trains a byte-level BPE (GPT-2 style, the
Hugging Face ``tokenizers`` library) of at most N tokens on the source and saves it beside the data as
``tokenizer.json``; every BPE dataset ends each document with ``<|endoftext|>``. A ``tokenizer.json`` file
is loaded with the same library; a tiktoken encoding name works when tiktoken is installed and has that
encoding locally.

A :class:`Tokenizer` is picklable by its ``spec`` (the JSON text or the tiktoken name): tokenisation workers
rebuild it from that.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deconstruct._errors import DataError

EOT = "<|endoftext|>"  # appended after every document by BPE tokenizers that have it
EOT_NAMES = (EOT, "</s>")  # the end-of-document tokens looked for in a given tokenizer.json
TOKENIZER_HELP = "use bytes, bpe:N (N ≥ 257), a tokenizer.json file, or a tiktoken encoding name"


def dtype_for(vocab_size: int) -> np.dtype:
    """uint16 when every token id fits, else uint32."""
    return np.dtype(np.uint16) if vocab_size <= 1 << 16 else np.dtype(np.uint32)


@dataclass
class Tokenizer:
    """``kind``: bytes | hf | tiktoken; ``spec``: what rebuilds it (JSON text for hf, the name for tiktoken)."""

    kind: str
    name: str  # as the user named it: bytes, bpe:512, path/tokenizer.json, gpt2
    spec: str = ""
    vocab_size: int = 256
    eot: int | None = None

    def __post_init__(self) -> None:
        self._impl: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_impl"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._impl = None

    @property
    def sha256(self) -> str:
        """Identity of the tokenizer: the same text in, the same ids out."""
        return hashlib.sha256(f"{self.kind}\0{self.spec if self.kind != 'bytes' else ''}".encode()).hexdigest()

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "vocab_size": self.vocab_size, "eot": self.eot,
                "sha256": self.sha256}

    def impl(self) -> Any:
        if self._impl is None and self.kind == "hf":
            from tokenizers import Tokenizer as HFTokenizer

            self._impl = HFTokenizer.from_str(self.spec)
        elif self._impl is None and self.kind == "tiktoken":
            import tiktoken

            self._impl = tiktoken.get_encoding(self.spec)
        return self._impl

    def encode(self, docs: list[bytes | str]) -> tuple[np.ndarray, int]:
        """Token ids of ``docs`` in order (each followed by ``eot`` when there is one) and the number of UTF-8
        bytes they stand for."""
        dtype = dtype_for(self.vocab_size)
        if self.kind == "bytes":
            raw = [d if isinstance(d, bytes) else d.encode() for d in docs]
            joined = b"".join(raw)
            return np.frombuffer(joined, dtype=np.uint8).astype(dtype), len(joined)
        texts = [d.decode("utf-8", errors="replace") if isinstance(d, bytes) else d for d in docs]
        n_bytes = sum(len(t.encode()) for t in texts)
        if self.kind == "hf":
            ids = [e.ids for e in self.impl().encode_batch(texts, add_special_tokens=False)]
        else:
            ids = self.impl().encode_ordinary_batch(texts)
        if self.eot is not None:
            ids = [x + [self.eot] for x in ids]
        flat = [i for x in ids for i in x]
        return np.asarray(flat, dtype=dtype), n_bytes

    def decode(self, ids: list[int]) -> str:
        if self.kind == "bytes":
            return bytes(ids).decode("utf-8", errors="replace")
        return str(self.impl().decode(list(ids)))


def _hf(name: str, text: str) -> Tokenizer:
    from tokenizers import Tokenizer as HFTokenizer

    try:
        tok = HFTokenizer.from_str(text)
    except Exception as exc:
        raise DataError(f"tokenizer {name}: not a Hugging Face tokenizer.json ({str(exc).splitlines()[0]})") from None
    eot = next((i for i in (tok.token_to_id(t) for t in EOT_NAMES) if i is not None), None)
    return Tokenizer("hf", name, spec=text, vocab_size=tok.get_vocab_size(with_added_tokens=True), eot=eot)


def train_bpe(vocab_size: int, texts: Any) -> Tokenizer:
    """A byte-level BPE of at most ``vocab_size`` tokens (``<|endoftext|>`` included) trained on ``texts``
    (an iterator of str). Every byte is in its alphabet, so any text round-trips."""
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import decoders, models, pre_tokenizers, trainers

    tok = HFTokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOT], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer=trainer)
    return _hf(f"bpe:{vocab_size}", tok.to_str())


def bpe_size(name: str) -> int | None:
    """N of ``bpe:N`` (None for any other tokenizer name); a bad N is a :class:`DataError`."""
    if not name.startswith("bpe:"):
        return None
    n = name[4:]
    if not n.isdigit() or not 257 <= int(n) <= 1 << 32:
        raise DataError(f"tokenizer {name!r}: N must be a whole number from 257 to 2^32 ({TOKENIZER_HELP})")
    return int(n)


def load_tokenizer(name: str) -> Tokenizer:
    """``bytes``, a tokenizer.json path, or a tiktoken encoding name (``bpe:N`` is trained: :func:`train_bpe`)."""
    if name == "bytes":
        return Tokenizer("bytes", "bytes")
    path = Path(name).expanduser()
    if path.is_dir() and (path / "tokenizer.json").is_file():  # a prepared dataset: reuse its tokenizer
        path = path / "tokenizer.json"
    if path.is_file():
        return _hf(name, path.read_text(encoding="utf-8"))
    if name.endswith(".json") or "/" in name:
        raise DataError(f"tokenizer {name!r}: no such file ({TOKENIZER_HELP})")
    try:
        import tiktoken
    except ImportError:
        raise DataError(f"unknown tokenizer {name!r} ({TOKENIZER_HELP}; tiktoken is not installed)") from None
    try:
        enc = tiktoken.get_encoding(name)
    except Exception as exc:
        raise DataError(f"tiktoken has no local encoding {name!r} ({str(exc).splitlines()[0]}; "
                        f"{TOKENIZER_HELP})") from None
    return Tokenizer("tiktoken", name, spec=name, vocab_size=enc.n_vocab, eot=enc.eot_token)
