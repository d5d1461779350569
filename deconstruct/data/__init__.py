"""Research-scale data: corpora tokenised once into memory-mapped shards, identified by a content hash.

``prepare(PrepareOptions(sources, out, tokenizer=...))`` turns text files, globs, JSON lines, Parquet, the
stdlib or a Hugging Face dataset into a dataset directory; ``open_dataset(dir)`` reads it back without
loading it (the ``lm`` task's ``data:`` and ``eval:`` use this). See ``_prepare`` for the directory's life
cycle (atomic, resumable) and ``_dataset`` for its layout.
"""

from deconstruct.data._dataset import Dataset, Header, open_dataset, read_header
from deconstruct.data._prepare import PrepareOptions, PrepareResult, Progress, prepare
from deconstruct.data._tokenizers import Tokenizer, load_tokenizer, train_bpe

__all__ = [
    "Dataset",
    "Header",
    "PrepareOptions",
    "PrepareResult",
    "Progress",
    "Tokenizer",
    "load_tokenizer",
    "open_dataset",
    "prepare",
    "read_header",
    "train_bpe",
]
