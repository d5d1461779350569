"""The ``lm`` task on prepared datasets: ``data:`` and ``eval:``, windows, metrics, and what a run records."""

from __future__ import annotations

import hashlib
import math
import platform
from pathlib import Path

import numpy as np
import pytest

from deconstruct._errors import DeconstructError, SpecError
from deconstruct.data import PrepareOptions, prepare, read_header
from deconstruct.spec import load_spec
from deconstruct.train import build_task, train

SPEC = {
    "name": "data",
    "task": {"name": "lm", "seq_len": 16},
    "model": {"d_model": 16, "layers": 1, "heads": 2},
    "train": {"steps": 3, "batch_size": 4, "eval_every": 3, "eval_batches": 2, "seeds": [0]},
}


def spec(**task) -> dict:
    s = {**SPEC, "task": {**SPEC["task"], **{k: str(v) if isinstance(v, Path) else v for k, v in task.items()}}}
    if "eval" in task:
        s["task"]["eval"] = {k: str(v) for k, v in task["eval"].items()}
    return s


@pytest.fixture(scope="module")
def positions(tmp_path_factory) -> Path:
    """A dataset whose token ids are their positions in the stream (0 … 4999), in shards of 777 tokens."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    root = tmp_path_factory.mktemp("positions")
    tok = Tokenizer(models.WordLevel({**{f"w{i}": i for i in range(5000)}, "[UNK]": 5000}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(root / "words.json"))
    (root / "src.txt").write_text(" ".join(f"w{i}" for i in range(5000)))
    prepare(PrepareOptions([str(root / "src.txt")], root / "ds", tokenizer=str(root / "words.json"), workers=1,
                           shard_tokens=777))
    return root / "ds"


def test_windows_are_contiguous_across_shards_and_train_never_sees_validation(positions):
    import torch

    task = build_task(load_spec(spec(data=positions, seq_len=16)))
    gen = torch.Generator().manual_seed(0)
    seen = {}
    for split in ("train", "val"):
        x, y = task.get_batch(split, 512, gen)
        assert x.shape == (512, 16) and x.dtype == torch.int64
        assert torch.equal(y[:, :-1], x[:, 1:]) and bool(((x[:, 1:] - x[:, :-1]) == 1).all())  # contiguous
        seen[split] = set(x.flatten().tolist()) | set(y[:, -1].tolist())
    assert not seen["train"] & seen["val"]
    assert len(seen["val"]) > 100 and len(seen["train"]) > 1000  # both spread over the stream
    assert max(seen["train"] | seen["val"]) > 4500


def test_evaluation_windows_are_identical_across_runs(bpe_dataset, corpus, tmp_path):
    held = prepare(PrepareOptions([str(corpus["parquet"])], tmp_path / "held", workers=1,
                                  tokenizer=str(bpe_dataset / "tokenizer.json"))).header

    class Keep:
        def on_start(self, info):
            self.val, self.evals = info["val_batches"], info["eval_sets"]

    runs = []
    for seed in (0, 1):
        keep = Keep()
        res = train(load_spec(spec(data=bpe_dataset, eval={"held": tmp_path / "held"})), seed=seed, callback=keep)
        runs.append((keep, res))
    (a, ra), (b, rb) = runs
    assert list(a.evals) == ["held"] and len(a.evals["held"]) == 2
    for xa, xb in zip(a.val + a.evals["held"], b.val + b.evals["held"], strict=True):
        assert all(u.equal(v) for u, v in zip(xa, xb, strict=True))
    assert ra.val_loss != rb.val_loss  # different seeds did train differently
    m = ra.metrics
    assert m["held_perplexity"] == pytest.approx(math.exp(m["held_loss"]))
    assert m["held_bits_per_byte"] == pytest.approx(m["held_loss"] / math.log(2) * held.tokens / held.bytes)
    assert ra.data["eval"] == {"held": held.content_hash}


def test_bits_per_byte_of_a_byte_level_dataset_is_loss_over_ln2(bytes_dataset):
    res = train(load_spec(spec(data=bytes_dataset)), seed=0)
    assert res.metrics["bits_per_byte"] == pytest.approx(res.val_loss / math.log(2), rel=1e-12)
    assert res.metrics["val_perplexity"] == pytest.approx(math.exp(res.val_loss))
    assert res.data == {"hash": read_header(bytes_dataset).content_hash, "tokenizer": "bytes",
                        "tokenizer_sha256": read_header(bytes_dataset).tokenizer["sha256"]}


def test_bpe_dataset_sets_the_vocabulary_and_bits_per_byte_uses_its_bytes_per_token(bpe_dataset, docs):
    from deconstruct.model import build_model

    resolved = load_spec(spec(data=bpe_dataset))
    vocab = read_header(bpe_dataset).vocab_size
    assert resolved.task_options.vocab_size == vocab
    assert build_model(resolved).wte.num_embeddings == vocab
    res = train(resolved, seed=0)
    n_tokens = sum(p.stat().st_size for p in bpe_dataset.glob("tokens-*.bin")) // 2  # uint16
    n_bytes = len("".join(docs).encode())
    assert res.metrics["bits_per_byte"] == pytest.approx(res.val_loss / math.log(2) * n_tokens / n_bytes)


def test_set_task_data_on_the_quickstart_trains_on_the_dataset(bpe_dataset):
    quickstart = Path(__file__).resolve().parents[2] / "studies" / "quickstart.yaml"
    resolved = load_spec(quickstart, [f"task.data={bpe_dataset}", "model.layers=1", "model.d_model=16",
                                      "task.seq_len=16", "train.steps=2", "train.eval_batches=1"])
    assert resolved.task_options.vocab_size == read_header(bpe_dataset).vocab_size
    assert train(resolved, seed=0).data["hash"] == read_header(bpe_dataset).content_hash


def test_corpus_runs_record_the_hash_of_their_bytes_and_the_python_version(tmp_path, corpus, docs):
    folder = corpus["text"]
    task = build_task(load_spec({**SPEC, "task": {"name": "lm", "corpus": str(folder), "seq_len": 16}}))
    expected = hashlib.sha256(b"".join(p.read_bytes() for p in sorted(folder.iterdir()))).hexdigest()
    assert task.data_identity == {"hash": expected, "tokenizer": "bytes", "corpus": str(folder)}
    stdlib = build_task(load_spec({**SPEC, "task": {"name": "lm", "seq_len": 16, "max_bytes": 100_000}}))
    assert stdlib.data_identity["python"] == platform.python_version()
    assert len(stdlib.data_identity["hash"]) == 64 and stdlib.data_identity["max_bytes"] == 100_000


def test_corpus_configurations_keep_their_hash():
    from deconstruct.tasks._lm import LMOptions

    assert set(LMOptions().model_dump()) == {"seq_len", "corpus", "max_bytes"}


@pytest.mark.parametrize(("task", "message"), [
    ({"data": "{ds}", "corpus": "/elsewhere"}, "not both"),
    ({"data": "{ds}", "max_bytes": 2048}, "max_bytes applies to a corpus"),
    ({"data": "{ds}", "eval": {"val": "{ds}"}}, "evaluation set name 'val'"),
    ({"data": "{ds}", "eval": {"Wiki Text": "{ds}"}}, "evaluation set name 'Wiki Text'"),
    ({"data": "{ds}", "eval": {"bpe": "{bpe}"}}, "prepared with tokenizer 'bpe:320', not the training data's"),
    ({"data": "{tmp}/nothing"}, "no such dataset directory"),
])
def test_bad_data_options_are_one_line(bytes_dataset, bpe_dataset, tmp_path, task, message):
    def fill(v):
        if isinstance(v, dict):
            return {k: fill(x) for k, x in v.items()}
        return v.format(ds=bytes_dataset, bpe=bpe_dataset, tmp=tmp_path) if isinstance(v, str) else v

    with pytest.raises((SpecError, DeconstructError), match=message) as err:
        build_task(load_spec({**SPEC, "task": {"name": "lm", "seq_len": 16, **fill(task)}}))
    assert "\n" not in str(err.value)


def test_a_window_longer_than_the_dataset_is_refused(bytes_dataset):
    with pytest.raises(SpecError, match="seq_len"):
        build_task(load_spec(spec(data=bytes_dataset, seq_len=4096)))


def test_windows_read_by_memory_map(bytes_dataset):
    task = build_task(load_spec(spec(data=bytes_dataset)))
    assert all(isinstance(m.base, np.memmap) for m in task.data._maps)
