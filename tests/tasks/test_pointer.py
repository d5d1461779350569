"""The ``pointer`` task (Pointer Networks, Vinyals et al. 2015): batches whose targets are the input
positions of the sorted (or copied) numbers, a causal pointer head over the input positions, and a model
that trains on it."""

from __future__ import annotations

import math

import pytest
import torch

from deconstruct.spec import load_spec
from deconstruct.tasks._pointer import Pointer, PointerOptions
from deconstruct.tasks._pointer_head import PointerHead
from deconstruct.train import train


@pytest.mark.parametrize("mode", ["sort", "copy"])
def test_targets_point_at_the_answer(mode):
    n, V = 6, 20
    task = Pointer(PointerOptions(n_items=n, values=V, mode=mode))
    x, y = task.get_batch("train", 5, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (5, 2 * n)
    for row_x, row_y in zip(x.tolist(), y.tolist(), strict=True):
        a = row_x[:n]
        assert len(set(a)) == n and all(0 <= v < V for v in a) and row_x[n] == V  # distinct, then SEP
        assert row_y[:n] == [-100] * n
        pointed = [a[p] for p in row_y[n:]]
        assert pointed == (sorted(a) if mode == "sort" else a)
        assert row_x[n + 1 :] == pointed[:-1]  # teacher forcing: the answer so far


def test_seq_len_is_derived():
    assert PointerOptions(n_items=5).seq_len == 10
    with pytest.raises(ValueError, match="derived"):
        PointerOptions(n_items=5, seq_len=12)
    with pytest.raises(ValueError, match="distinct"):
        PointerOptions(n_items=8, values=4)


def test_pointer_head_scores_input_positions_causally():
    torch.manual_seed(0)
    head = PointerHead(8, 3)
    h = torch.randn(2, 6, 8)
    out = head(h)
    assert out.shape == (2, 6, 3)
    assert torch.isinf(out[:, 0, 1:]).all() and torch.isinf(out[:, 1, 2]).all()  # j > t masked
    expected = head.q(h[:, 4]) @ head.k(h[:, 1]).T / math.sqrt(8)  # position 4 pointing at input 1
    torch.testing.assert_close(out[:, 4, 1], expected.diagonal())
    h2 = h.clone()
    h2[:, 5] += 1.0  # a later position changes nothing earlier
    torch.testing.assert_close(head(h2)[:, :5], out[:, :5])


def test_trains_and_reports_accuracy():
    spec = {"name": "pointer", "task": {"name": "pointer", "n_items": 4, "values": 16},
            "model": {"d_model": 16, "layers": 1, "heads": 2},
            "train": {"steps": 2, "batch_size": 4, "eval_every": 2, "eval_batches": 1}}
    res = train(load_spec(spec), seed=0)
    assert math.isfinite(res.val_loss)
    assert 0.0 <= res.metrics["accuracy"] <= 1.0
