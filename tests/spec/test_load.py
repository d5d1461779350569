"""Spec validation: every error names the YAML path and line and says what would be valid."""

from __future__ import annotations

import pytest

from deconstruct import SpecError
from deconstruct.spec import LAYOUT_PRESETS, load_spec, standard_layers


def check_error(tmp_path, text: str, *, line: int | None, path: str | None, contains: str) -> SpecError:
    f = tmp_path / "s.yaml"
    f.write_text(text)
    with pytest.raises(SpecError) as info:
        load_spec(f)
    err = info.value
    assert err.line == line, str(err)
    assert err.path == path, str(err)
    assert contains in str(err), str(err)
    assert "\n" not in str(err)
    return err


def test_misspelt_key_names_path_line_and_nearest(tmp_path):
    err = check_error(tmp_path, "name: x\nmodel:\n  d_model: 64\n  lyers: 4\n", line=4, path="model.lyers", contains="did you mean 'layers'")
    assert "valid keys:" in str(err)


def test_wrong_type(tmp_path):
    check_error(tmp_path, "name: x\ntrain:\n  steps: ten\n", line=3, path="train.steps", contains="valid integer")


def test_out_of_range(tmp_path):
    check_error(tmp_path, "name: x\ntrain:\n  lr: -1\n", line=3, path="train.lr", contains="greater than 0")


def test_invalid_yaml(tmp_path):
    check_error(tmp_path, "name: x\nmodel: {layers: [1\n", line=3, path=None, contains="invalid YAML")


def test_unknown_mixer_lists_registered(tmp_path):
    err = check_error(tmp_path, "name: x\nmodel:\n  mixer: {kind: attentoin}\n", line=3, path="model.mixer.kind", contains="did you mean 'attention'")
    assert "registered:" in str(err) and "mlp" in str(err)


def test_heads_must_divide_width(tmp_path):
    check_error(tmp_path, "name: x\nmodel:\n  d_model: 65\n  heads: 4\n", line=4, path="model.heads", contains="divisible")


def test_mixer_option_checked_against_its_model(tmp_path):
    check_error(tmp_path, "name: x\nmodel:\n  mixer:\n    kind: attention\n    kv_heads: 3\n", line=3, path="model.mixer", contains="must divide heads")
    check_error(tmp_path, "name: x\nmodel:\n  mixer:\n    kind: mlp\n    widht: 3\n", line=5, path="model.mixer.widht", contains="did you mean 'width'")


def test_unreadable_file(tmp_path):
    with pytest.raises(SpecError, match="no such file"):
        load_spec(tmp_path / "missing.yaml")


def test_set_overrides_parse_yaml_scalars(tiny):
    r = load_spec(tiny, ["model.layers=3", "train.lr=1e-3", "model.mixer=mlp", "model.layout=hybrid"])
    assert r.spec.model.layers == 3 and r.spec.train.lr == pytest.approx(1e-3)
    assert [p.mixer for p in r.layers] == ["mlp", "attention", "mlp"]


def test_set_error_says_set(tiny):
    with pytest.raises(SpecError) as info:
        load_spec(tiny, ["model.layers=x"])
    assert info.value.file == "--set" and info.value.path == "model.layers"


def test_layout_presets_match_the_paper_at_24_layers():
    assert standard_layers("hybrid", 24) == set(range(2, 25, 2))
    assert standard_layers("top", 24) == set(range(1, 13))
    assert standard_layers("bottom", 24) == set(range(13, 25))
    assert standard_layers("middle", 24) == set(range(1, 7)) | set(range(19, 25))
    assert standard_layers("quarter", 24) == {4, 8, 12, 16, 20, 24}
    assert standard_layers("bilateral", 24) == {1, 24}
    assert standard_layers("odd", 24) == {1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23}
    assert standard_layers("first", 24) == {1}
    assert standard_layers("last", 24) == {24}
    assert standard_layers("uniform", 24) == set()
    assert set(LAYOUT_PRESETS) >= {"uniform", "hybrid", "odd", "top", "middle", "bottom", "quarter", "first", "last", "bilateral"}


# the docstring table of deconstruct/spec/_layouts.py at L = 4 (h = 2, q = 1) and L = 6 (h = 3, q = 1)
SCALED = {
    "uniform": (set(), set()),
    "hybrid": ({2, 4}, {2, 4, 6}),
    "even": ({2, 4}, {2, 4, 6}),
    "odd": ({1, 3}, {1, 3, 5}),
    "top": ({1, 2}, {1, 2, 3}),
    "bottom": ({3, 4}, {4, 5, 6}),
    "middle": ({1, 4}, {1, 6}),
    "quarter": ({4}, {4}),
    "first": ({1}, {1}),
    "last": ({4}, {6}),
    "bilateral": ({1, 4}, {1, 6}),
}


@pytest.mark.parametrize("preset", sorted(SCALED))
def test_layout_presets_scale_to_4_and_6_layers(preset):
    at4, at6 = SCALED[preset]
    assert standard_layers(preset, 4) == at4
    assert standard_layers(preset, 6) == at6


def test_every_layout_preset_has_a_documented_scaling():
    assert set(LAYOUT_PRESETS) == set(SCALED)


def test_standard_layers_and_overrides(tiny):
    tiny["model"].update(layers=4, mixer="mlp", standard_layers=[2, 4], overrides={1: "attention"})
    r = load_spec(tiny)
    assert [p.mixer for p in r.layers] == ["attention", "attention", "mlp", "attention"]
    assert r.relaxed_layers == [3]


def test_explicit_layout_needs_one_mixer_per_layer(tiny):
    tiny["model"]["layout"] = ["attention", "mlp", "mlp"]
    with pytest.raises(SpecError, match="one mixer per layer"):
        load_spec(tiny)


def test_config_hash_ignores_seeds_but_not_model(tiny):
    a = load_spec(tiny).config_hash()
    assert load_spec(tiny, ["train.seeds=[5, 6]"]).config_hash() == a
    assert load_spec(tiny, ["model.layers=3"]).config_hash() != a


def test_resolution_keeps_the_entries_it_found_outside_the_config(tiny):
    from deconstruct.plugins import get_registry

    tiny["model"].update(layers=2, mixer="mlp", standard="standard", standard_layers=[1])
    r = load_spec(tiny)
    reg = get_registry()
    # layer 1 uses the preset "standard", which builds on "attention"
    assert [e.name for e in r.layers[0].mixer_entries] == ["standard", "attention"]
    assert r.layers[0].mixer_entry is reg.get("mixer", "attention")
    assert r.layers[1].mixer_entry is reg.get("mixer", "mlp")
    assert r.layers[1].channel_entry is reg.get("channel_mixer", "mlp")
    assert r.task_entry is reg.get("task", "lm")
    assert (r.layers[0].mixes_tokens, r.layers[1].mixes_tokens) == (True, False)  # attention mixes, mlp does not
    config = repr(r.config())  # plain data: no entry (nor its build function) leaks into what is stored
    assert "Entry" not in config and "function" not in config
    assert "mixer_entries" not in repr(r.layers[0])
