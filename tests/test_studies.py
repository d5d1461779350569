"""Every example spec in studies/ validates, and every configuration of its search space trains a few steps
(shrunk with --set-style overrides so the whole sweep takes seconds)."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import pytest

from deconstruct.spec import load_spec
from deconstruct.train import train

STUDIES = sorted((Path(__file__).resolve().parent.parent / "studies").glob("*.yaml"))
SHRINK = ["model.d_model=48", "model.layers=2", "task.seq_len=16",
          "train.steps=2", "train.batch_size=2", "train.eval_batches=1", "train.eval_every=2"]
TASK_SHRINK = {"lm": ["task.max_bytes=200000"], "mqar": ["task.num_pairs=2"]}


def shrink(path: Path) -> list[str]:
    return SHRINK + TASK_SHRINK.get(load_spec(path).spec.task.name, [])


def test_there_are_example_specs():
    assert {p.stem for p in STUDIES} >= {"quickstart", "principles", "heads", "coverage", "pointer"}


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.stem)
def test_spec_validates_as_written(path):
    resolved = load_spec(path)
    assert resolved.name == path.stem and resolved.spec.search


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.stem)
def test_every_configuration_of_the_search_space_trains(path):
    search = load_spec(path).spec.search
    assert all(isinstance(v, list) for v in search.values()), "example studies search categorical axes"
    for values in itertools.product(*search.values()):
        sets = [f"{k}={json.dumps(v)}" for k, v in zip(search, values, strict=True)]  # JSON is YAML
        res = train(load_spec(path, shrink(path) + sets), seed=0, with_diagnostics=False)
        assert math.isfinite(res.val_loss), sets
