"""``prepare``: every source format, the tokenizers, the uint16/uint32 switch, resuming, and refusing bad data."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from deconstruct._errors import DataError
from deconstruct.data import PrepareOptions, open_dataset, prepare, read_header
from deconstruct.data._dataset import partial_dir


def tokens_of(path: Path) -> np.ndarray:
    ds = open_dataset(path)
    return np.asarray(ds.window(0, len(ds)))


@pytest.mark.parametrize("fmt", ["jsonl", "jsonl.gz", "parquet", "text"])
def test_every_source_format_gives_the_documents_bytes(tmp_path, corpus, docs, fmt):
    res = prepare(PrepareOptions([str(corpus[fmt])], tmp_path / "out", workers=1, chunk_bytes=2048))
    expected = "".join(docs).encode()
    assert res.header.documents == len(docs)
    assert res.header.tokens == res.header.bytes == len(expected)
    assert tokens_of(tmp_path / "out").tobytes() == np.frombuffer(expected, np.uint8).astype(np.uint16).tobytes()
    assert res.header.dtype == "uint16" and res.header.vocab_size == 256 and res.header.bytes_per_token == 1.0


def test_same_tokens_same_hash_whatever_the_format_sharding_or_workers(tmp_path, corpus, bytes_dataset):
    a = read_header(bytes_dataset)
    assert len(a.shards) > 1  # 7000-token shards
    b = prepare(PrepareOptions([str(corpus["parquet"])], tmp_path / "b", workers=2, shard_tokens=1 << 20)).header
    assert len(b.shards) == 1 and b.content_hash == a.content_hash
    c = prepare(PrepareOptions([str(corpus["jsonl"])], tmp_path / "c", tokenizer="bpe:300", workers=1)).header
    assert c.content_hash != a.content_hash


def test_glob_and_several_sources_in_order(tmp_path, corpus, docs):
    texts = corpus["text"]
    res = prepare(PrepareOptions([str(texts / "doc000*.txt"), str(corpus["jsonl"])], tmp_path / "out", workers=1))
    expected = ("".join(docs[:10]) + "".join(docs)).encode()
    assert tokens_of(tmp_path / "out").astype(np.uint8).tobytes() == expected
    assert [s["documents"] for s in res.header.sources] == [10, len(docs)]


def test_bpe_round_trips_every_document(tmp_path, bpe_dataset, docs):
    from deconstruct.data import load_tokenizer

    header = read_header(bpe_dataset)
    tok = load_tokenizer(str(bpe_dataset / "tokenizer.json"))
    assert header.vocab_size == tok.vocab_size <= 320 and header.dtype == "uint16"
    ids = tokens_of(bpe_dataset).tolist()
    assert ids.count(tok.eot) == len(docs) and ids[-1] == tok.eot
    pieces, start = [], 0
    for i, t in enumerate(ids):
        if t == tok.eot:
            pieces.append(tok.decode(ids[start:i]))
            start = i + 1
    assert pieces == docs
    assert header.bytes == len("".join(docs).encode()) and header.tokens == len(ids)
    assert header.bytes_per_token > 1.5  # merges happened
    odd = "ünseen wörds, tabs\tand 🙂 emoji ≠ training text"
    assert tok.decode(tok.encode([odd])[0][:-1].tolist()) == odd  # byte-level: anything round-trips


def test_a_given_tokenizer_json_is_reused_with_its_identity(tmp_path, corpus, bpe_dataset):
    again = prepare(PrepareOptions([str(corpus["parquet"])], tmp_path / "again",
                                   tokenizer=str(bpe_dataset / "tokenizer.json"), workers=2, chunk_bytes=2048))
    assert again.header.content_hash == read_header(bpe_dataset).content_hash  # same text, same tokenizer
    assert (tmp_path / "again" / "tokenizer.json").read_text() == (bpe_dataset / "tokenizer.json").read_text()


def test_vocabularies_over_65536_are_stored_as_uint32(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {f"w{i}": i for i in range(70_000)}
    vocab["[UNK]"] = 70_000
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(tmp_path / "big.json"))
    words = [f"w{i}" for i in (0, 1, 65_535, 65_536, 69_999)] * 50
    (tmp_path / "src.txt").write_text(" ".join(words))
    res = prepare(PrepareOptions([str(tmp_path / "src.txt")], tmp_path / "out", tokenizer=str(tmp_path / "big.json"),
                                 workers=1))
    assert res.header.dtype == "uint32" and res.header.vocab_size == 70_001
    assert tokens_of(tmp_path / "out").tolist() == [int(w[1:]) for w in words]
    small = prepare(PrepareOptions([str(tmp_path / "src.txt")], tmp_path / "small", workers=1))
    assert small.header.dtype == "uint16"


def test_an_interrupted_prepare_never_looks_complete_and_resumes(tmp_path, corpus, bpe_dataset):
    out = tmp_path / "out"
    opts = dict(tokenizer="bpe:320", workers=1, chunk_bytes=4096, shard_tokens=3000)

    def stop_after_two(p):
        if p.documents and stop_after_two.calls == 2:
            raise KeyboardInterrupt
        stop_after_two.calls += 1

    stop_after_two.calls = 0
    with pytest.raises(KeyboardInterrupt):
        prepare(PrepareOptions([str(corpus["jsonl"])], out, **opts), on_progress=stop_after_two)
    assert not out.exists() and partial_dir(out).is_dir()
    with pytest.raises(DataError, match="interrupted prepare"):
        open_dataset(out)
    # a crash between writing tokens and recording them: the shard holds more than progress.json vouches for
    last = sorted(partial_dir(out).glob("tokens-*.bin"))[-1]
    with open(last, "ab") as f:
        f.write(b"\x07\x00" * 123)
    notes: list[str] = []
    res = prepare(PrepareOptions([str(corpus["jsonl"])], out, **opts), note=notes.append)
    assert res.resumed_chunks == 3 and any("resuming" in n for n in notes)
    assert not partial_dir(out).exists()
    fresh = prepare(PrepareOptions([str(corpus["jsonl"])], tmp_path / "fresh", **opts)).header
    assert res.header.content_hash == fresh.content_hash == read_header(bpe_dataset).content_hash
    assert np.array_equal(tokens_of(out), tokens_of(tmp_path / "fresh"))


def test_a_changed_input_restarts_instead_of_resuming(tmp_path, docs, jsonl_writer):
    write_jsonl = jsonl_writer
    src = write_jsonl(tmp_path / "a.jsonl", docs)
    out = tmp_path / "out"

    def stop(p):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        prepare(PrepareOptions([str(src)], out, workers=1, chunk_bytes=1024), on_progress=stop)
    write_jsonl(src, docs[:50])
    notes: list[str] = []
    res = prepare(PrepareOptions([str(src)], out, workers=1, chunk_bytes=1024), note=notes.append)
    assert res.resumed_chunks == 0 and any("discarding" in n for n in notes)
    assert res.header.documents == 50


def test_an_existing_dataset_is_kept_unless_forced(tmp_path, corpus, docs):
    out = tmp_path / "out"
    prepare(PrepareOptions([str(corpus["jsonl"])], out, workers=1))
    with pytest.raises(DataError, match="already holds a prepared dataset"):
        prepare(PrepareOptions([str(corpus["jsonl"])], out, workers=1))
    res = prepare(PrepareOptions([str(corpus["text"] / "doc0001.txt")], out, workers=1, force=True))
    assert read_header(out).documents == res.header.documents == 1


def corrupt_copy(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    os.utime(dst / "header.json")  # a copy: the header is as new as the shards
    return dst


def test_truncated_corrupt_and_unfinished_datasets_are_refused(tmp_path, bytes_dataset):
    truncated = corrupt_copy(bytes_dataset, tmp_path / "truncated")
    shard = truncated / "tokens-00001.bin"
    shard.write_bytes(shard.read_bytes()[:-10])
    with pytest.raises(DataError, match=r"tokens-00001.bin: truncated \(13990 bytes, expected 14000"):
        open_dataset(truncated)

    flipped = corrupt_copy(bytes_dataset, tmp_path / "flipped")
    shard = flipped / "tokens-00000.bin"
    raw = bytearray(shard.read_bytes())
    raw[100] ^= 0xFF
    st = (flipped / "header.json").stat()
    shard.write_bytes(bytes(raw))
    os.utime(shard, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size, same time: only --verify sees it
    open_dataset(flipped)
    with pytest.raises(DataError, match="corrupt"):
        open_dataset(flipped).verify()
    os.utime(shard)  # modified after the header: re-hashed when opened
    with pytest.raises(DataError, match="corrupt"):
        open_dataset(flipped)

    header = corrupt_copy(bytes_dataset, tmp_path / "header")
    text = (header / "header.json").read_text()
    (header / "header.json").write_text(text[: len(text) // 2])
    with pytest.raises(DataError, match="corrupt header"):
        open_dataset(header)
    counts = json.loads(text)
    counts["tokens"] += 1
    (header / "header.json").write_text(json.dumps(counts))
    with pytest.raises(DataError, match="corrupt header"):
        open_dataset(header)
    with pytest.raises(DataError, match="no such dataset"):
        open_dataset(tmp_path / "nothing")


@pytest.mark.parametrize(("sources", "kwargs", "message"), [
    (["{tmp}/missing*.jsonl"], {}, "matches no files"),
    (["{corpus}"], {"text_field": "body"}, "no text field 'body'"),
    (["{corpus}"], {"tokenizer": "bpe:12"}, "N must be a whole number from 257"),
    (["{corpus}"], {"tokenizer": "nope/tokenizer.json"}, "no such file"),
])
def test_bad_sources_and_tokenizers_are_one_line(tmp_path, corpus, sources, kwargs, message):
    srcs = [s.format(tmp=tmp_path, corpus=corpus["jsonl"]) for s in sources]
    with pytest.raises(DataError, match=message) as err:
        prepare(PrepareOptions(srcs, tmp_path / "out", workers=1, **kwargs))
    assert "\n" not in str(err.value)
    assert not (tmp_path / "out").exists()
