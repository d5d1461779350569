"""Small corpora made inside the tests: a few hundred short documents as JSON lines, Parquet and text files."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import pytest

WORDS = ("the cat sat on a mat while dogs ran past quick brown foxes — naïve café ünïcode 日本語 🙂 "
         "attention heads mix tokens and channels").split()


def make_documents(n: int = 300, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 40))) + f" ({i}).\n" for i in range(n)]


@pytest.fixture(scope="session")
def docs() -> list[str]:
    return make_documents()


def write_jsonl(path: Path, docs: list[str], field: str = "text") -> Path:
    lines = "".join(json.dumps({field: d, "id": i}) + "\n" for i, d in enumerate(docs))
    if path.name.endswith(".gz"):
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write(lines)
    else:
        path.write_text(lines, encoding="utf-8")
    return path


def write_parquet(path: Path, docs: list[str], field: str = "text") -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({field: docs, "id": list(range(len(docs)))}), path, row_group_size=64)
    return path


def write_texts(folder: Path, docs: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, d in enumerate(docs):
        (folder / f"doc{i:04d}.txt").write_text(d, encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def corpus(tmp_path_factory, docs) -> dict[str, Path]:
    """The same documents in every source format."""
    root = tmp_path_factory.mktemp("corpus")
    return {
        "jsonl": write_jsonl(root / "docs.jsonl", docs),
        "jsonl.gz": write_jsonl(root / "docs.jsonl.gz", docs),
        "parquet": write_parquet(root / "docs.parquet", docs),
        "text": write_texts(root / "texts", docs),
    }


@pytest.fixture(scope="session")
def bytes_dataset(tmp_path_factory, corpus) -> Path:
    from deconstruct.data import PrepareOptions, prepare

    out = tmp_path_factory.mktemp("ds") / "bytes"
    prepare(PrepareOptions([str(corpus["jsonl"])], out, workers=1, chunk_bytes=4096, shard_tokens=7000))
    return out


@pytest.fixture(scope="session")
def bpe_dataset(tmp_path_factory, corpus) -> Path:
    from deconstruct.data import PrepareOptions, prepare

    out = tmp_path_factory.mktemp("ds") / "bpe"
    prepare(PrepareOptions([str(corpus["jsonl"])], out, tokenizer="bpe:320", workers=1, chunk_bytes=4096))
    return out


@pytest.fixture
def jsonl_writer():
    """``write_jsonl(path, docs)`` for a test that makes its own source."""
    return write_jsonl
