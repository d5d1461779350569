"""studies/principles.yaml: every named variant × {uniform, hybrid} validates and trains; skip evaluation."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from deconstruct.builtin.presets import PRESETS
from deconstruct.spec import load_spec
from deconstruct.train import build_task, train

SPEC = Path(__file__).resolve().parents[2] / "studies" / "principles.yaml"
TINY = ["train.steps=2", "train.batch_size=4", "train.eval_batches=1", "train.eval_every=2",
        "model.d_model=32", "model.layers=2", "model.heads=2", "task.seq_len=32", "task.max_bytes=200000"]


@pytest.fixture(scope="module")
def task():
    return build_task(load_spec(SPEC, TINY))


def test_spec_searches_every_named_variant_in_both_layouts():
    resolved = load_spec(SPEC)
    search = resolved.spec.search
    assert set(search["model.mixer.kind"]) == {"attention", "mlp", *PRESETS}
    assert search["model.layout"] == ["uniform", "hybrid"]
    assert resolved.spec.task.name == "lm" and resolved.task_options.corpus == "stdlib"


@pytest.mark.parametrize("layout", ["uniform", "hybrid"])
@pytest.mark.parametrize("kind", ["attention", "mlp", *PRESETS])
def test_every_configuration_trains(kind, layout, task):
    resolved = load_spec(SPEC, TINY + [f"model.mixer.kind={kind}", f"model.layout={layout}"])
    relaxed = [p.index for p in resolved.layers if not p.standard]
    if kind == "attention":
        assert relaxed == []
    else:
        assert relaxed == ([1, 2] if layout == "uniform" else [1])  # hybrid: standard in even layers
    result = train(resolved, seed=0, task=task, device="cpu", skip_relaxed=True)
    assert result.steps == 2 and math.isfinite(result.val_loss) and math.isfinite(result.metrics["skip_block_val_loss"])
    assert result.params > 0 and result.flops_per_token > 0


def test_skip_evaluation(task):
    """skip_block_val_loss removes the relaxed layers of a trained hybrid; a uniform-standard model has none."""
    hybrid = train(load_spec(SPEC, TINY + ["model.mixer.kind=approximate", "model.layout=hybrid"]),
                   task=task, device="cpu", skip_relaxed=True)
    assert hybrid.metrics["skip_block_val_loss"] != hybrid.val_loss
    standard = train(load_spec(SPEC, TINY + ["model.mixer.kind=attention"]), task=task, device="cpu", skip_relaxed=True)
    assert standard.metrics["skip_block_val_loss"] == standard.val_loss
