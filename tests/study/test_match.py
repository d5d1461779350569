"""Fair comparisons by construction: ``study.match`` (parameters) and ``train.flops`` (training compute).

Parameter counts are taken from models built for real on the CPU (``sum(p.numel())``), not from the
meta-device counter the matcher uses, and FLOPs from each model's own analytic count."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch

from deconstruct.model import build_model
from deconstruct.plugins import get_registry
from deconstruct.spec import load_spec
from deconstruct.study import Matcher, MatchError, SearchSpace, match_space, normalize
from deconstruct.train import total_steps, train

MIXERS = ["attention", "collapsed_qk", "identity_vo", "mlp", "differential"]


def study(match: str, tolerance: float = 0.02, **model: Any) -> dict[str, Any]:
    return {
        "name": "fair",
        "task": {"name": "lm", "corpus": "stdlib", "seq_len": 16, "max_bytes": 200_000},
        "model": {"d_model": 32, "layers": 2, "heads": 4, "mixer": "attention", **model},
        "train": {"steps": 2, "batch_size": 2, "eval_every": 2, "eval_batches": 1, "seeds": [0]},
        "search": {"model.mixer.kind": MIXERS},
        "study": {"sampler": "grid", "match": {"params": match, "tolerance": tolerance}},
    }


def matched(data: dict[str, Any]):
    registry = get_registry()
    base = normalize(copy.deepcopy(data))
    spec = load_spec(base, registry=registry).spec
    load = lambda d: load_spec(d, registry=registry)  # noqa: E731
    m = spec.study.match
    return match_space(SearchSpace(spec, registry), base, Matcher(m.params, m.tolerance, base, load))


def real_params(resolved) -> int:
    torch.manual_seed(0)
    model = build_model(resolved)
    return sum(p.numel() for p in model.parameters())


def test_unmatched_variants_really_differ():
    """The premise: without matching, collapsed_qk and identity_vo are far from standard attention."""
    counts = {p["model.mixer.kind"]: real_params(m.resolved) for p, m in matched(study("none"))}
    base = counts["attention"]
    assert counts["collapsed_qk"] > base * 1.05 and counts["identity_vo"] < base * 0.95


def test_match_through_mlp_ratio_puts_every_configuration_within_two_percent():
    rows = matched(study("mlp_ratio"))
    assert sorted(p["model.mixer.kind"] for p, _ in rows) == sorted(MIXERS)
    base = real_params(load_spec(study("mlp_ratio")))
    for params, m in rows:
        n = real_params(m.resolved)
        assert abs(n - base) / base <= 0.02, (params, n, base)
        assert m.resolved.spec.model.mlp_ratio == m.value  # the matched ratio is part of the configuration
    ratios = {p["model.mixer.kind"]: m.value for p, m in rows}
    assert ratios["attention"] == 4.0  # the baseline keeps its own ratio
    assert ratios["collapsed_qk"] < 4.0 < ratios["identity_vo"]  # more mixer parameters → narrower MLP


def test_match_through_d_model_picks_a_width_per_configuration():
    rows = matched(study("d_model", tolerance=0.1, d_model=64, heads=4))
    base = real_params(load_spec(study("d_model", d_model=64, heads=4)))
    widths = {p["model.mixer.kind"]: m.value for p, m in rows}
    for params, m in rows:
        assert m.value % 4 == 0 and m.resolved.spec.model.d_model == m.value
        assert abs(real_params(m.resolved) - base) / base <= 0.1, params
    assert widths["attention"] == 64 and widths["identity_vo"] > 64  # fewer mixer parameters → wider


def test_a_configuration_that_cannot_be_matched_stops_the_study_before_training(tmp_path):
    """No channel mixer: nothing follows mlp_ratio, so collapsed_qk cannot be matched — one line naming it."""
    from deconstruct.study import StudyRunner

    data = study("mlp_ratio", channel_mixer="none")
    with pytest.raises(MatchError, match=r"study.match.params: configuration model.mixer.kind=collapsed_qk: cannot be matched through mlp_ratio"):
        StudyRunner(data, storage=f"sqlite:///{tmp_path / 'db.sqlite'}")


def test_spec_check_shows_the_matched_value_per_configuration(cli, tmp_path):
    import yaml

    path = tmp_path / "fair.yaml"
    path.write_text(yaml.safe_dump(study("mlp_ratio")))
    configs = cli.json("spec", "check", str(path))["configurations"]
    assert len(configs) == len(MIXERS) and all(isinstance(c["matched"], float) for c in configs)
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(study("mlp_ratio", channel_mixer="none")))
    res = cli("spec", "check", str(bad))
    assert res.exit_code == 2 and res.stderr.strip().count("\n") == 0 and "cannot be matched" in res.stderr


def test_flops_budget_gives_each_configuration_the_steps_its_cost_allows():
    """train.flops: training FLOPs (3 × forward FLOPs/token × tokens) agree across configurations within one
    step's worth, although their FLOPs per token differ."""
    budget = 2e9
    data = study("none")
    data["train"] = {**data["train"], "flops": budget}
    del data["train"]["steps"]
    seen = {}
    for params, m in matched(data):
        model = build_model(m.resolved)
        fpt = model.flops_per_token(16)  # the model's own analytic count
        per_step = 3 * fpt * 2 * 16
        steps = total_steps(m.resolved)
        assert budget - per_step < steps * per_step <= budget, params
        seen[params["model.mixer.kind"]] = steps
    assert len(set(seen.values())) > 1  # cheaper mixers (mlp) get more steps


def test_flops_budget_is_what_train_runs():
    data = study("none")
    data["train"] = {**data["train"], "flops": 5e8}
    del data["train"]["steps"]
    resolved = load_spec(data)
    result = train(resolved, seed=0, with_diagnostics=False)
    assert result.steps == total_steps(resolved) and result.steps > 1


def test_tokens_and_flops_together_are_refused():
    data = study("none")
    data["train"].update(tokens=1000, flops=1e9)
    from deconstruct import SpecError

    with pytest.raises(SpecError, match="set one budget: tokens or flops, not both"):
        load_spec(data)
