"""The probe tasks: what a batch contains, that labels mean what they claim, and that models learn."""

from __future__ import annotations

import pytest
import torch
from _support import tiny_spec

from deconstruct import SpecError
from deconstruct.spec import load_spec
from deconstruct.tasks._cloze import MASK, Cloze, ClozeOptions
from deconstruct.tasks._lm import ByteLM, LMOptions
from deconstruct.tasks._mqar import MQAR, MQAROptions
from deconstruct.train import train


def test_lm_windows_are_consecutive_bytes_and_splits_disjoint():
    task = ByteLM(LMOptions(seq_len=16, max_bytes=300_000))
    x, y = task.get_batch("train", 3, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (3, 16) and torch.equal(x[:, 1:], y[:, :-1])
    assert len(task.train) + len(task.val) == 300_000 and len(task.val) > 0


def test_mqar_labels_are_the_values_of_the_queried_keys():
    o = MQAROptions(seq_len=32, vocab=64, num_pairs=4)
    x, y = MQAR(o).get_batch("train", 16, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (16, 32)
    for row_x, row_y in zip(x.tolist(), y.tolist(), strict=True):
        pairs = {row_x[2 * i]: row_x[2 * i + 1] for i in range(4)}
        assert len(pairs) == 4 and all(1 <= k < 32 <= v < 64 for k, v in pairs.items())
        labelled = [t for t, label in enumerate(row_y) if label != -100]
        assert len(labelled) == 4 and all(t >= 8 for t in labelled)
        assert sorted(row_x[t] for t in labelled) == sorted(pairs)  # every key queried once
        assert all(row_y[t] == pairs[row_x[t]] for t in labelled)


def test_mqar_options_reject_impossible_sizes():
    with pytest.raises(SpecError, match="4·n ≤ seq_len"):
        load_spec({"name": "m", "task": {"name": "mqar", "seq_len": 16, "num_pairs": 5, "vocab": 64}})
    with pytest.raises(SpecError, match="must exceed seq_len"):
        load_spec({"name": "m", "task": {"name": "mqar", "seq_len": 64, "vocab": 32}})


def test_cloze_masks_and_labels_only_masked_positions():
    task = Cloze(ClozeOptions(seq_len=64, max_bytes=200_000, mask_rate=0.25))
    x, y = task.get_batch("train", 8, torch.Generator().manual_seed(0))
    masked = x == MASK
    assert torch.equal(masked, y != -100) and masked.any(dim=1).all()
    assert 0.1 < masked.float().mean().item() < 0.4


def test_cloze_builds_a_bidirectional_model():
    r = load_spec({"name": "c", "task": {"name": "cloze", "seq_len": 16, "max_bytes": 200_000},
                   "model": {"d_model": 16, "layers": 1, "heads": 2}})
    assert r.context(1).causal is False


def test_attention_learns_mqar_and_reports_accuracy():
    spec = {
        "name": "mqar",
        "task": {"name": "mqar", "seq_len": 32, "vocab": 64, "num_pairs": 2},
        "model": {"d_model": 64, "layers": 2, "heads": 2},
        "train": {"steps": 150, "batch_size": 32, "lr": 3e-3, "eval_every": 150, "eval_batches": 4},
    }
    res = train(load_spec(spec), seed=0)
    assert 0.0 <= res.metrics["accuracy"] <= 1.0
    assert res.metrics["accuracy"] > 0.2  # chance is 1/32 over the value range


def test_lm_corpus_glob_reads_the_files_in_sorted_order(tmp_path, monkeypatch):
    from deconstruct.tasks._lm import load_corpus
    from deconstruct.train import build_task

    monkeypatch.setenv("DECONSTRUCT_CACHE", str(tmp_path / "cache"))  # keep the shared cache clean
    texts = {"b.txt": b"".join(b"bravo %04d: the second file\n" % i for i in range(120)),  # written first
             "a.txt": b"".join(b"ALPHA %04d; THE FIRST FILE\n" % i for i in range(150))}
    for name, text in texts.items():
        (tmp_path / name).write_bytes(text)
    (tmp_path / "skip.md").write_bytes(b"not matched by the glob\n" * 10)
    expected = texts["a.txt"] + texts["b.txt"]
    spec = tiny_spec(task={"corpus": str(tmp_path / "*.txt"), "seq_len": 16, "max_bytes": None}, d_model=16, layers=1,
                     train={"steps": 2, "batch_size": 2})
    resolved = load_spec(spec)

    assert bytes(load_corpus(resolved.task_options.corpus).tolist()) == expected
    task = build_task(resolved)
    assert len(task.train) + len(task.val) == len(expected) and len(task.val) > 0
    assert bytes(task.train[:64].tolist()) == expected[:64]  # the first block is training data, from a.txt
    both = torch.cat([task.train, task.val])  # the split only regroups blocks: every byte once
    assert torch.equal(torch.bincount(both, minlength=256),
                       torch.bincount(torch.tensor(list(expected), dtype=torch.uint8), minlength=256))
    assert bytes(task.val[:16].tolist()) in expected
    again = build_task(load_spec(spec))
    assert torch.equal(again.train, task.train) and torch.equal(again.val, task.val)  # deterministic split

    res = train(resolved, seed=0)
    assert res.steps == 2 and res.val_loss == res.val_loss and res.val_loss > 0

    nothing = {**spec, "task": {**spec["task"], "corpus": str(tmp_path / "*.nope")}}
    with pytest.raises(SpecError) as err:
        build_task(load_spec(nothing))
    assert err.value.path == "task.corpus" and "task.corpus" in str(err.value) and "matches no files" in str(err.value)
