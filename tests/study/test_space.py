"""The search space: distributions, grids, encodings, conditional options and path checks (no training)."""

from __future__ import annotations

import copy

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from deconstruct._errors import SpecError
from deconstruct.plugins import get_registry
from deconstruct.spec import Spec, load_spec
from deconstruct.study import SearchSpace


def _space(spec: dict, search: dict) -> tuple[SearchSpace, dict]:
    data = copy.deepcopy(spec)
    data["search"] = search
    return SearchSpace(Spec.model_validate(data), get_registry()), data


def _load(data):
    return load_spec(data)


def test_lists_and_ranges_become_distributions(spec):
    space, _ = _space(spec, {
        "model.mixer.kind": ["attention", "mlp"],
        "model.layers": {"low": 1, "high": 3},
        "train.lr": {"low": 1e-4, "high": 1e-2, "log": True},
        "train.warmup_steps": {"low": 0, "high": 4, "step": 2},
        "model.dropout": {"low": 0.0, "high": 0.2, "step": 0.1},
    })
    dists = {p.path: p.distribution() for p in space.params}
    assert dists["model.mixer.kind"] == CategoricalDistribution(["attention", "mlp"])
    assert dists["model.layers"] == IntDistribution(1, 3)
    assert dists["train.lr"] == FloatDistribution(1e-4, 1e-2, log=True)
    assert dists["train.warmup_steps"] == IntDistribution(0, 4, step=2)
    assert dists["model.dropout"] == FloatDistribution(0.0, 0.2, step=0.1)
    assert not space.finite and space.grid_size() is None  # lr has no step
    grids = {p.path: p.grid() for p in space.params}
    assert grids["model.layers"] == [1, 2, 3] and grids["train.warmup_steps"] == [0, 2, 4]
    assert grids["model.dropout"] == [0.0, 0.1, 0.2]


def test_grid_size_and_structured_choices(spec):
    spec["model"]["layers"] = 2
    layout = [{"kind": "attention"}, {"kind": "mlp"}]
    space, data = _space(spec, {"model.layout": ["uniform", "hybrid", layout], "model.overrides.2.kind": ["attention", "mlp"]})
    assert space.grid_size() == 6 and len(space.points(data)) == 6
    [p] = [p for p in space.params if p.path == "model.layout"]
    assert p.encoded[2] == '[{"kind": "attention"}, {"kind": "mlp"}]' and p.decode(p.encoded[2]) == layout
    sample = space.apply(data, lambda q: q.encoded[2] if q.path == "model.layout" else "mlp")
    assert sample.params == {"model.layout": layout, "model.overrides.2.kind": "mlp"}
    resolved = load_spec(sample.data)
    assert [plan.mixer for plan in resolved.layers] == ["attention", "mlp"]


def test_options_a_mixer_does_not_take_are_inactive(spec):
    space, data = _space(spec, {"model.mixer.kind": ["attention", "mlp", "static_qk"],
                                "model.mixer.kv_heads": [1, 2], "model.mixer.qk_source": ["hidden", "random"]})
    assert [p.path for p in space.params][-2:] == ["model.mixer.kv_heads", "model.mixer.qk_source"]  # kinds first
    mlp = space.apply(data, lambda p: "mlp" if p.path.endswith("kind") else p.encoded[0])
    assert mlp.params == {"model.mixer.kind": "mlp"}
    assert mlp.inactive == ["model.mixer.kv_heads", "model.mixer.qk_source"]
    static = space.apply(data, lambda p: "static_qk" if p.path.endswith("kind") else p.encoded[-1])
    assert static.inactive == ["model.mixer.qk_source"]  # the preset fixes it
    assert static.data["model"]["mixer"] == {"kind": "static_qk", "kv_heads": 2}
    # 3 kinds × 2 × 2 grid points, but only attention (4) + mlp (1) + static_qk (2) distinct configurations
    assert space.grid_size() == 12 and len(space.points(data)) == 7


def test_an_option_valid_for_another_choice_is_dropped(spec):
    """normalization: separate applies to the approximate form only: dropped (with its default kept) for
    attention; kv_heads: 3 is valid for no choice: the trial fails with the validator's sentence."""
    space, data = _space(spec, {"model.mixer.kind": ["attention", "approximate"],
                                "model.mixer.normalization": ["single", "separate"]})
    sample = space.apply(data, lambda p: {"model.mixer.kind": "attention"}.get(p.path, "separate"))
    with pytest.raises(SpecError, match="approximate only"):
        load_spec(sample.data)
    resolved, effective = space.resolve(data, sample, _load)
    assert effective.inactive == ["model.mixer.normalization"] and effective.params == {"model.mixer.kind": "attention"}
    assert resolved.layers[0].options.normalization == "single"
    ok = space.apply(data, lambda p: {"model.mixer.kind": "approximate"}.get(p.path, "separate"))
    assert space.resolve(data, ok, _load)[1] is ok

    space, data = _space(spec, {"model.mixer.kind": ["attention", "approximate"], "model.mixer.kv_heads": [1, 3]})
    bad = space.apply(data, lambda p: {"model.mixer.kind": "attention"}.get(p.path, 3))
    with pytest.raises(SpecError, match="must divide heads"):
        space.resolve(data, bad, _load)


def test_sampling_through_an_optuna_trial(spec):
    space, data = _space(spec, {"model.mixer.kind": ["attention", "mlp"], "model.mixer.kv_heads": [1, 2],
                                "train.lr": {"low": 1e-3, "high": 1e-2, "log": True}})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(12):
        trial = study.ask()
        sample = space.sample(trial, data)
        assert set(trial.params) == set(sample.encoded)  # inactive options are never suggested
        assert ("model.mixer.kv_heads" in trial.params) == (sample.params["model.mixer.kind"] == "attention")
        load_spec(sample.data)
        seen.add(sample.params["model.mixer.kind"])
        study.tell(trial, 1.0)
    assert seen == {"attention", "mlp"}


@pytest.mark.parametrize(("search", "message"), [
    ({"train.seeds": [[0], [1]]}, "seeds are replicates"),
    ({"model.layerz": [1, 2]}, "did you mean model.layers?"),
    ({"train.lr": {"low": 1e-3, "high": 1e-2, "log": True, "step": 1e-3}}, "search.train.lr"),
    ({"model.layers": {"low": 1, "high": 4, "step": 0.5}}, "whole numbers"),
    ({"model.mixer.kv_head": [1]}, "did you mean 'kv_heads'?"),
    ({"model.mixer.kind": []}, "at least one value"),
])
def test_bad_search_paths_are_spec_errors(spec, search, message):
    with pytest.raises(SpecError, match=message.replace("?", r"\?").replace(".", r"\.")):
        _space(spec, search)


def test_a_grid_needs_a_finite_space(spec):
    space, _ = _space(spec, {"train.lr": {"low": 1e-3, "high": 1e-2}})
    with pytest.raises(SpecError, match="finite space"):
        space.grid_space()
