"""The skip evaluation (``train(..., skip_relaxed=True)``) is exactly the validation loss of the trained
model with its relaxed blocks removed. The trained model is reproduced by re-running the loop of
:mod:`deconstruct.train._loop` step for step (training is deterministic for a seed); the blocks are then
deleted from a copy of it, so the reference never goes through ``forward(skip=...)``."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from deconstruct.model import build_model
from deconstruct.spec import load_spec
from deconstruct.train import train
from deconstruct.train._loop import (
    EVAL_SEED,
    autocast_for,
    build_task,
    evaluate,
    lr_at,
    make_optimizer,
    pick_device,
    token_loss,
    total_steps,
)


def train_by_hand(resolved, seed: int):
    """The same steps as ``train`` (CPU, token task): returns the trained model, its validation batches
    and the autocast context."""
    t = resolved.spec.train
    dev = pick_device("cpu")
    torch.manual_seed(seed)
    task = build_task(resolved)
    model = build_model(resolved, task.vocab_size, fixed_tokens=task.fixed_tokens(task.seq_len)).to(dev)
    model.train()
    opt = make_optimizer(model, t, dev)
    amp = autocast_for(dev, t.precision)
    steps = total_steps(resolved)
    warmup = t.warmup_steps if t.warmup_steps is not None else max(1, steps // 10)
    gen = torch.Generator().manual_seed(seed)
    val_gen = torch.Generator().manual_seed(EVAL_SEED)
    val_batches = [task.get_batch("val", t.batch_size, val_gen) for _ in range(t.eval_batches)]
    for step in range(1, steps + 1):
        for g in opt.param_groups:
            g["lr"] = lr_at(step - 1, steps, t.lr, warmup, t.min_lr_ratio)
        x, y = task.get_batch("train", t.batch_size, gen)
        with amp:
            loss = token_loss(model(x), y)
            aux = model.aux_loss()
            if aux is not None:
                loss = loss + aux
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if t.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
        opt.step()
    return model, val_batches, amp


def test_skip_val_loss_is_the_loss_without_the_relaxed_blocks(tiny):
    tiny["model"]["mixer"] = "mlp"
    tiny["model"]["layout"] = "hybrid"
    tiny["train"].update(steps=3, eval_every=3, eval_batches=2, device="cpu")
    resolved = load_spec(tiny)
    assert resolved.relaxed_layers == [1]  # hybrid at depth 2: layer 2 keeps attention, layer 1 is the MLP

    result = train(resolved, seed=0, skip_relaxed=True, with_diagnostics=False)
    model, val_batches, amp = train_by_hand(resolved, seed=0)
    # the reproduction is the same trained model
    assert evaluate(model, val_batches, amp)["val_loss"] == pytest.approx(result.val_loss, abs=1e-6)

    pruned = copy.deepcopy(model)
    relaxed = {i - 1 for i in resolved.relaxed_layers}
    pruned.blocks = nn.ModuleList(b for i, b in enumerate(pruned.blocks) if i not in relaxed)
    assert len(pruned.blocks) == 1 and pruned.block_list()[0].mixer.__class__.__name__ == "Attention"
    independent = evaluate(pruned, val_batches, amp)["val_loss"]

    assert result.metrics["skip_val_loss"] == pytest.approx(independent, abs=1e-6)
    assert abs(result.metrics["skip_val_loss"] - result.val_loss) > 1e-3
