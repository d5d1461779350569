"""AttentionOptions through the spec validator: defaults are standard, incompatible combinations are
rejected with one sentence naming the spec line."""

from __future__ import annotations

import pytest
from _support import tiny_spec

from deconstruct._errors import SpecError
from deconstruct.builtin.attention import AttentionOptions
from deconstruct.spec import load_spec


def spec(mixer, d_model=32, heads=4, positions="learned"):
    return tiny_spec(mixer, task={"seq_len": 16}, d_model=d_model, heads=heads, positions=positions)


def test_defaults_are_standard_attention():
    o = AttentionOptions()
    assert (o.qk_source, o.form, o.qk, o.vo, o.kv_heads) == ("hidden", "softmax", "separate", "separate", None)
    explicit = {"kind": "attention", "form": "softmax", "qk_source": "hidden", "qk": "separate", "vo": "separate"}
    resolved = load_spec(spec(explicit))
    assert all(p.standard for p in resolved.layers)  # explicit defaults are the standard mixer
    assert resolved.config_hash() == load_spec(spec("attention")).config_hash()


REJECTED = [
    ({"qk": "symmetric", "kv_heads": 2}, {}, "qk: symmetric uses W_K = W_Q"),
    ({"qk": "collapsed", "kv_heads": 2}, {}, "qk: collapsed has no key projection"),
    ({"vo": "identity", "kv_heads": 1}, {}, "vo: identity has no value projection"),
    ({"vo": "collapsed", "kv_heads": 2}, {}, "vo: collapsed has no value projection"),
    ({"qk": "collapsed", "qk_dim": 4}, {}, "qk_dim sets the width of W_Q and W_K"),
    ({"qk": "collapsed", "form": "approximate"}, {}, "1 + d + d² = 1057 per key"),
    ({"normalization": "separate"}, {}, "normalization: separate applies to form: approximate only"),
    ({"form": "sigmoid", "chunk_size": 64}, {}, "chunk_size applies to form: approximate or non_approximate only"),
    ({"qk_source": "static", "random_std": 0.5}, {}, "random_std applies to qk_source: random only"),
    ({"detach_stream": True}, {}, "detach_stream applies to qk_source: random or fixed_text only"),
    ({"qk_dim": 3}, {"positions": "rope"}, "must be even"),
    ({"kv_heads": 3}, {}, "kv_heads (3) must divide heads (4)"),
]


@pytest.mark.parametrize(("options", "model", "message"), REJECTED)
def test_incompatible_combinations_are_rejected_with_a_sentence(options, model, message):
    with pytest.raises(SpecError) as exc:
        load_spec(spec({"kind": "attention", **options}, **model))
    assert message in str(exc.value)
    assert "model.mixer" in str(exc.value)


def test_presets_reject_conflicting_options_and_accept_free_ones():
    with pytest.raises(SpecError, match="preset 'approximate' fixes form"):
        load_spec(spec({"kind": "approximate", "form": "softmax"}))
    plan = load_spec(spec({"kind": "approximate", "normalization": "separate", "chunk_size": 8})).layers[0]
    assert plan.base == "attention" and plan.options.normalization == "separate" and not plan.standard
    # the same rules apply behind a preset
    with pytest.raises(SpecError, match="qk: symmetric"):
        load_spec(spec({"kind": "symmetric_qk", "kv_heads": 2}))


def test_supported_combinations_validate():
    for options in (
        {"form": "non_approximate", "qk": "collapsed", "vo": "collapsed"},
        {"form": "approximate", "qk": "symmetric", "vo": "identity", "qk_dim": 4},
        {"form": "relu", "qk": "frozen", "kv_heads": 2, "qk_source": "random", "random_std": 0.5},
        {"qk_source": "fixed_text", "detach_stream": True, "vo": "identity"},
        {"form": "non_approximate", "qk_dim": 3},  # odd width is fine without rope, and rope leaves it alone
    ):
        load_spec(spec({"kind": "attention", **options}))
    load_spec(spec({"kind": "non_approximate", "qk_dim": 3}, positions="rope"))
