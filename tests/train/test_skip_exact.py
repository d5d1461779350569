"""The skip evaluation (``train(..., skip_relaxed=True)``) is exactly the validation loss of the trained
model with its relaxed blocks removed. The trained model is taken from the run (``on_start`` hands it to a
callback); the blocks are then deleted from a copy of it, so the reference never goes through
``forward(skip=...)``."""

from __future__ import annotations

import copy

import pytest
from torch import nn

from deconstruct.spec import load_spec
from deconstruct.train import evaluate, train


class Capture:
    """Keeps the live model and validation batches that ``train`` hands to ``on_start``."""

    def on_start(self, info):
        self.model, self.val_batches, self.amp = info["model"], info["val_batches"], info["autocast"]


def test_skip_block_val_loss_is_the_loss_without_the_relaxed_blocks(tiny):
    tiny["model"]["mixer"] = "mlp"
    tiny["model"]["layout"] = "hybrid"
    tiny["train"].update(steps=3, eval_every=3, eval_batches=2, device="cpu")
    resolved = load_spec(tiny)
    assert resolved.relaxed_layers == [1]  # hybrid at depth 2: layer 2 keeps attention, layer 1 is the MLP

    capture = Capture()
    result = train(resolved, seed=0, skip_relaxed=True, with_diagnostics=False, callback=capture)
    model, val_batches, amp = capture.model, capture.val_batches, capture.amp
    # the captured model is the trained one
    assert evaluate(model, val_batches, amp)["val_loss"] == pytest.approx(result.val_loss, abs=1e-6)

    pruned = copy.deepcopy(model)
    relaxed = {i - 1 for i in resolved.relaxed_layers}
    pruned.blocks = nn.ModuleList(b for i, b in enumerate(pruned.blocks) if i not in relaxed)
    assert len(pruned.blocks) == 1 and pruned.block_list()[0].mixer.__class__.__name__ == "Attention"
    independent = evaluate(pruned, val_batches, amp)["val_loss"]

    assert result.metrics["skip_block_val_loss"] == pytest.approx(independent, abs=1e-6)
    assert abs(result.metrics["skip_block_val_loss"] - result.val_loss) > 1e-3


class _Zero(nn.Module):
    """A token mixer whose residual branch is zero (what skipping the mixer alone means)."""

    def forward(self, x, qk=None):
        return x * 0


def test_skip_mixer_val_loss_is_the_loss_without_the_relaxed_token_mixers(tiny):
    tiny["model"]["mixer"] = "mlp"
    tiny["model"]["layout"] = "hybrid"
    tiny["train"].update(steps=3, eval_every=3, eval_batches=2, device="cpu")
    resolved = load_spec(tiny)
    capture = Capture()
    result = train(resolved, seed=0, skip_relaxed=True, with_diagnostics=False, callback=capture)

    replaced = copy.deepcopy(capture.model)
    for i in resolved.relaxed_layers:
        replaced.block_list()[i - 1].mixer = _Zero()
    independent = evaluate(replaced, capture.val_batches, capture.amp)["val_loss"]
    assert result.metrics["skip_mixer_val_loss"] == pytest.approx(independent, abs=1e-6)
    # keeping the relaxed layers' channel mixers is a different model from removing the blocks
    assert abs(result.metrics["skip_mixer_val_loss"] - result.metrics["skip_block_val_loss"]) > 1e-4
