"""Training: determinism, learning, schedule, non-finite loss, budgets, the skip evaluation."""

from __future__ import annotations

import math

import pytest

from deconstruct._errors import RunError
from deconstruct.spec import load_spec
from deconstruct.train import lr_at, train


def test_same_seed_same_val_loss(tiny):
    r = load_spec(tiny)
    a, b = train(r, seed=0), train(r, seed=0)
    assert abs(a.val_loss - b.val_loss) < 1e-6
    c = train(r, seed=1)
    assert c.val_loss != a.val_loss


def test_learns_real_text(tiny):
    r = load_spec(tiny, ["train.steps=30", "train.eval_every=30", "train.lr=1e-2"])
    res = train(r, seed=0)
    assert res.val_loss < math.log(256) - 1.5  # far below the uniform guess over 256 bytes (5.55 nats)
    assert res.metrics["bits_per_byte"] < 8 - 2  # far below the 8 bits of a uniform guess over 256 bytes
    assert res.tokens == 30 * 4 * 32 and res.steps == 30
    assert res.params > 0 and res.flops_per_token > 0 and res.tokens_per_second > 0


def test_a_uniform_guess_scores_8_bits_per_byte(tiny):
    """A model whose logits are all zero predicts every byte with probability 1/256: ln 256 nats, 8 bits."""
    import torch

    class ZeroHead:  # the head (tied to the embeddings) zeroed before training; lr too small to move it
        def on_start(self, info):
            with torch.no_grad():
                info["model"].head.weight.zero_()

    res = train(load_spec(tiny, ["train.steps=1", "train.eval_every=1", "train.lr=1e-12"]), seed=0, callback=ZeroHead())
    assert res.val_loss == pytest.approx(math.log(256), abs=1e-6)
    assert res.metrics["bits_per_byte"] == pytest.approx(8.0, abs=1e-6)


def test_history_has_curves_at_eval_points(tiny):
    res = train(load_spec(tiny), seed=0)
    steps = sorted({s for s, name, _ in res.history if name == "val_loss"})
    assert steps == [2, 4]


def test_non_finite_loss_raises_run_error(tiny):
    r = load_spec(tiny, ["train.lr=1e12", "train.grad_clip=0", "train.steps=30", "train.warmup_steps=0"])
    with pytest.raises(RunError, match="non-finite"):
        train(r, seed=0)


def test_token_budget_sets_steps(tiny):
    res = train(load_spec(tiny, ["train.tokens=1024"]), seed=0)
    assert res.steps == 1024 // (4 * 32)


def test_schedule_warmup_then_cosine():
    assert lr_at(0, 100, 1.0, 10, 0.1) == pytest.approx(0.1)
    assert lr_at(9, 100, 1.0, 10, 0.1) == pytest.approx(1.0)
    assert lr_at(100, 100, 1.0, 10, 0.1) == pytest.approx(0.1)
    assert lr_at(55, 100, 1.0, 10, 0.1) == pytest.approx(0.55)


def test_callbacks_see_every_step_and_can_stop(tiny):
    seen = []

    class Stop(Exception):
        pass

    class CB:
        def on_step(self, step, loss, tps):
            seen.append(step)

        def on_eval(self, step, metrics):
            raise Stop

    with pytest.raises(Stop):
        train(load_spec(tiny), seed=0, callback=CB())
    assert seen == [1, 2]
