"""``train.compile: true`` trains through torch.compile of the whole model; a model that cannot be compiled
trains eagerly with one warning line saying why, recorded in the run's metrics. (Compiling for real takes
minutes on a small CPU, so the real compilation is a slow test; the fallback is checked with a compiler
that fails.)"""

from __future__ import annotations

import pytest
import torch

from deconstruct.spec import load_spec
from deconstruct.train import train


def test_compile_is_not_part_of_the_configuration(tiny):
    plain = load_spec(tiny)
    tiny["train"]["compile"] = True
    assert load_spec(tiny).config_hash() == plain.config_hash()  # same model and data: results are reusable


def test_a_model_that_cannot_compile_trains_eagerly_with_one_line(tiny, monkeypatch):
    def broken_compile(model, **kw):
        def fails(*a, **k):
            raise RuntimeError("inductor: no working C++ compiler\nlong details …")
        return fails

    monkeypatch.setattr(torch, "compile", broken_compile)
    tiny["train"]["compile"] = True
    with pytest.warns(RuntimeWarning, match="could not be compiled") as record:
        compiled = train(load_spec(tiny), with_diagnostics=False)
    assert len(record) == 1 and "\n" not in str(record[0].message)
    assert compiled.metrics["compile"] == "eager: RuntimeError: inductor: no working C++ compiler"
    tiny["train"]["compile"] = False
    eager = train(load_spec(tiny), with_diagnostics=False)
    assert compiled.val_loss == eager.val_loss  # the fallback is the same training
    assert "compile" not in eager.metrics


@pytest.mark.slow
def test_compiled_training_matches_eager(tiny):
    eager = train(load_spec(tiny), with_diagnostics=False)
    tiny["train"]["compile"] = True
    compiled = train(load_spec(tiny), with_diagnostics=False)
    assert compiled.metrics["compile"] == "compiled"
    assert compiled.val_loss == pytest.approx(eager.val_loss, rel=1e-3)
