"""What the report takes from the registry and the resolved spec: which mixers are token-wise (the registered
``mixes_tokens`` flag) and which value of an axis is the standard one (the resolution's ``standard`` mark on
the layers an axis sets, or the schema's default) — checked on configurations the real resolver produced."""

from __future__ import annotations

from pathlib import Path

import pytest
from _support import tiny_spec

from deconstruct.report._registry import standard_value, token_wise
from deconstruct.spec import load_spec

BASE = tiny_spec()  # 2 layers


def points(axis: str, values: list, spec: dict = BASE) -> list[tuple[dict, dict]]:
    """Each value as a search point with the configuration the spec resolves to when the axis takes it."""
    return [({axis: v}, load_spec(spec, [f"{axis}={v}"]).config()) for v in values]


def test_token_wise_comes_from_the_registered_flag():
    assert token_wise("mlp") is True  # registered with mixes_tokens=False
    assert token_wise("attention") is False and token_wise("window") is False
    assert token_wise("not_registered_here") is False and token_wise(None) is False


@pytest.mark.parametrize(("axis", "values", "standard"), [
    ("model.mixer.kind", ["mlp", "symmetric_qk", "attention"], "attention"),
    ("model.mixer.kind", ["mlp", "standard", "attention"], "standard"),  # the alias preset resolves to it
    ("model.mixer.form", ["sigmoid", "softmax", "relu"], "softmax"),  # attention's own default option
    ("model.mixer.qk", ["frozen", "symmetric", "separate"], "separate"),
    ("model.mixer.kind", ["mlp", "symmetric_qk"], None),  # no value resolves to the standard mixer
])
def test_standard_value_of_a_mixer_axis_is_the_one_resolved_as_standard(axis, values, standard):
    assert standard_value(axis, values, points(axis, values)) == standard


def test_an_override_axis_looks_at_its_own_layer():
    spec = tiny_spec("mlp")  # every layer but the overridden one is relaxed
    values = ["window", "attention", "mlp"]
    assert standard_value("model.overrides.2.kind", values, points("model.overrides.2.kind", values, spec)) == "attention"


def test_other_model_keys_use_the_schema_default_and_the_rest_has_none():
    assert standard_value("model.layout", ["hybrid", "uniform"], []) == "uniform"
    assert standard_value("model.positions", ["rope", "learned"], []) == "learned"
    assert standard_value("model.layers", [2, 4], []) is None  # not a named choice
    assert standard_value("train.lr", [0.001, 0.003], []) is None
    values = ["glu", "mlp"]  # a channel mixer is not standard attention's business
    assert standard_value("model.channel_mixer.kind", values, points("model.channel_mixer.kind", values)) is None


def test_no_report_module_names_a_mixer_or_a_standard_value():
    source = "\n".join(p.read_text() for p in (Path(__file__).parents[2] / "deconstruct" / "report").glob("*.py"))
    for name in ('"mlp"', "'mlp'", '"attention"', '"softmax"', '"separate"', '"hidden"'):
        assert name not in source, name  # ("uniform" is the HTML heatmap's colour-scale end, not a layout)
