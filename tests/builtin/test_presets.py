"""Named variants through the whole model (build_model): causality, equivalences, fixed streams, frozen
weights and parameter counts."""

from __future__ import annotations

import pytest
import torch
from _support import tiny_spec

from deconstruct.builtin.presets import PRESETS
from deconstruct.model import build_model
from deconstruct.plugins import get_registry
from deconstruct.spec import load_spec
from deconstruct.testing import check_mixer
from deconstruct.train import make_optimizer

NAMED = ["attention", "mlp", *PRESETS]
D_MODEL, LAYERS, HEADS, T = 16, 2, 2, 16


def spec(mixer="attention", layout="uniform", **model):
    return tiny_spec(mixer, task={"seq_len": T}, **{"d_model": D_MODEL, "layers": LAYERS, "heads": HEADS, "layout": layout, **model})


def build(mixer="attention", layout="uniform", seed=0, **model):
    resolved = load_spec(spec(mixer, layout, **model))
    torch.manual_seed(seed)
    fixed = torch.arange(T) * 7 % 256  # a fixed "text" for fixed_text_qk
    return build_model(resolved, fixed_tokens=fixed)


def tokens(B=2, seed=0):
    return torch.randint(0, 256, (B, T), generator=torch.Generator().manual_seed(seed))


# The papers' named variants and the one attention switch each relaxes (Xue et al. 2025; Dong et al. 2025;
# Bermeitinger et al. 2024), written out here rather than read back from PRESETS.
PAPER_VARIANTS = {
    "approximate": {"form": "approximate"},
    "non_approximate": {"form": "non_approximate"},
    "static_qk": {"qk_source": "static"},
    "random_qk": {"qk_source": "random"},
    "fixed_text_qk": {"qk_source": "fixed_text"},
    "frozen_qk": {"qk": "frozen"},
    "symmetric_qk": {"qk": "symmetric"},
    "collapsed_qk": {"qk": "collapsed"},
    "collapsed_vo": {"vo": "collapsed"},
    "identity_vo": {"vo": "identity"},
}


def test_presets_are_registered_with_papers_and_resolve_to_attention_options():
    reg = get_registry()
    assert set(PRESETS) == set(PAPER_VARIANTS)
    for name, fixed in PAPER_VARIANTS.items():
        entry = reg.get("mixer", name)
        assert entry.paper and entry.summary and entry.preset == {"kind": "attention", **fixed}
        base, options = reg.resolve_mixer(name)
        assert base.name == "attention" and options == fixed
    assert reg.get("mixer", "approximate").paper.startswith("Xue et al. 2025")
    assert "2410.13732" in reg.get("mixer", "identity_vo").paper


@pytest.mark.parametrize("layout", ["uniform", "hybrid"])
@pytest.mark.parametrize(
    "mixer", NAMED + [{"kind": "approximate", "chunk_size": 4}, {"kind": "non_approximate", "chunk_size": 3}]
)
def test_model_causality_and_gradients(mixer, layout):
    """Changing token t+1 (and later) never changes the logits at positions ≤ t, through the whole model
    (fixed streams and static embeddings included); gradients reach every trainable parameter."""
    model = build(mixer, layout)
    idx = tokens()
    logits = model(idx)
    for t in (0, 7, 14):
        idx2 = idx.clone()
        idx2[:, t + 1 :] = (idx2[:, t + 1 :] + 1 + torch.arange(T - t - 1)) % 256
        logits2 = model(idx2)
        torch.testing.assert_close(logits2[:, : t + 1], logits[:, : t + 1], rtol=0, atol=1e-6)
        assert not torch.allclose(logits2[:, t + 1 :], logits[:, t + 1 :])
    logits.logsumexp(-1).mean().backward()
    for n, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and torch.isfinite(p.grad).all(), n


def test_explicit_defaults_equal_standard_model_bit_for_bit():
    explicit = {"kind": "attention", "form": "softmax", "qk_source": "hidden", "qk": "separate", "vo": "separate"}
    a, b = build("attention"), build(explicit)
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)
    idx = tokens()
    assert torch.equal(a(idx), b(idx))


def test_hybrid_with_every_layer_standard_equals_uniform_standard():
    uniform, hybrid = build("attention", "uniform"), build("attention", "hybrid")
    idx = tokens()
    assert torch.equal(uniform(idx), hybrid(idx))
    plans = load_spec(spec("attention", "hybrid")).layers
    assert all(p.standard for p in plans)
    relaxed = load_spec(spec("approximate", "hybrid")).layers  # relaxed in odd (1-indexed) layers
    assert [p.standard for p in relaxed] == [False, True]


def _maps(model, idx):
    """Each block's attention map for input idx, from the (x, qk) its mixer received (calls that advance a
    fixed stream, batch 1, are not the input's)."""
    seen = []

    def hook(m, args, out):
        if args[0].shape[0] == idx.shape[0]:
            seen.append(m.attention_weights(*args))

    hooks = [b.mixer.register_forward_hook(hook) for b in model.blocks]
    model(idx)
    for h in hooks:
        h.remove()
    return seen


@pytest.mark.parametrize("mixer", ["random_qk", "fixed_text_qk"])
def test_fixed_stream_attention_map_does_not_depend_on_the_input(mixer):
    model = build(mixer)
    a, b = _maps(model, tokens(seed=1)), _maps(model, tokens(seed=2))
    assert len(a) == LAYERS
    for ma, mb in zip(a, b, strict=True):
        torch.testing.assert_close(ma, mb, rtol=0, atol=0)
        torch.testing.assert_close(ma[0], ma[1])  # and it is the same for every sequence of the batch
    standard, static = build("attention"), build("static_qk")
    assert not torch.allclose(_maps(standard, tokens(seed=1))[0], _maps(standard, tokens(seed=2))[0])
    assert not torch.allclose(_maps(static, tokens(seed=1))[0], _maps(static, tokens(seed=2))[0])


def test_static_qk_map_depends_on_tokens_not_context():
    """StaticEmbQK: the score between positions i and j depends on the tokens at i and j only."""
    model = build("static_qk")
    idx = tokens(B=1)
    idx2 = idx.clone()
    idx2[0, 3] = (idx2[0, 3] + 1) % 256  # change one earlier token
    last = _maps(model, idx)[-1], _maps(model, idx2)[-1]
    # scores among positions ≠ 3 are unchanged, so their relative weights are too (in the last layer)
    keep = [j for j in range(T) if j != 3]
    w, w2 = (m[0, :, -1, keep] / m[0, :, -1, keep].sum(-1, keepdim=True) for m in last)
    torch.testing.assert_close(w, w2)


@pytest.mark.parametrize("detach", [False, True])
def test_detach_stream_cuts_gradients_through_the_fixed_stream(detach):
    resolved = load_spec(spec({"kind": "random_qk", "detach_stream": detach, "random_std": 0.5}))
    torch.manual_seed(0)
    model = build_model(resolved)
    assert model.detach_streams is detach
    torch.testing.assert_close(model.fixed_random.std(), torch.tensor(0.5), atol=0.05, rtol=0)
    grads = []  # does the stream entering block 2 (batch 1) still carry block 1's graph?
    model.blocks[1].norm1.register_forward_pre_hook(
        lambda m, args: grads.append(args[0].requires_grad) if args[0].shape[0] == 1 else None
    )
    model(tokens())
    assert grads and all(g is (not detach) for g in grads)


def test_frozen_qk_weights_do_not_train():
    model = build("frozen_qk")
    opt = make_optimizer(model, load_spec(spec("frozen_qk")).spec.train, torch.device("cpu"))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    model(tokens()).logsumexp(-1).mean().backward()
    opt.step()
    for n, p in model.named_parameters():
        if "qk_frozen" in n:
            assert not p.requires_grad and torch.equal(p, before[n]), n
        elif n.endswith(("qkv.weight", "out_proj.weight")):
            assert not torch.equal(p, before[n]), n
    assert before["blocks.0.mixer.qk_frozen.weight"].std() > 0.01  # random, initialised like W_Q, W_K


def test_model_parameter_counts():
    d, L = D_MODEL, LAYERS
    std = build("attention").num_params()
    assert build("symmetric_qk").num_params() == std - L * d * d
    assert build("symmetric_qk", "hybrid").num_params() == std - (L // 2) * d * d
    assert build("identity_vo").num_params() == std - L * 2 * d * d
    assert build("collapsed_qk").num_params() == std + L * (HEADS * d * d - 2 * d * d)
    assert build("collapsed_vo").num_params() == std + L * (HEADS * d * d - 2 * d * d)
    assert build("frozen_qk").num_params() == std
    assert build("frozen_qk").num_params(trainable_only=True) == std - L * 2 * d * d
    for name in ("approximate", "non_approximate", "static_qk", "random_qk", "fixed_text_qk"):
        assert build(name).num_params() == std, name
    # one head: collapsing QK saves d² per layer (d² instead of 2d²)
    assert build("collapsed_qk", heads=1).num_params() == build("attention", heads=1).num_params() - L * d * d


CONFORMANCE = [(name, {}) for name in PRESETS] + [
    ("attention", {"form": "sigmoid"}),
    ("attention", {"form": "relu", "kv_heads": 2}),
    ("approximate", {"normalization": "separate", "chunk_size": 8}),
    ("non_approximate", {"chunk_size": 8, "qk": "collapsed", "vo": "collapsed"}),
]


@pytest.mark.parametrize(("name", "options"), CONFORMANCE, ids=[f"{n}-{o}" if o else n for n, o in CONFORMANCE])
def test_conformance_suite(name, options):
    """The suite every plugin mixer must pass (deconstruct.testing); training is covered by test_principles."""
    check_mixer(name, options, checks=("shape", "causal", "gradients", "deterministic", "spec"))


def _static_map(static_positions: bool) -> torch.Tensor:
    """Layer 1's attention map (H, T, T) of a static_qk model on a sequence holding token 5 at positions 2
    and 9, captured from the forward pass (the mixer's own inputs)."""
    model = build({"kind": "static_qk", "static_positions": static_positions}, layers=1)
    idx = tokens(B=1)
    idx[0, 2] = idx[0, 9] = 5
    captured = {}
    block = model.block_list()[0]
    handle = block.mixer.register_forward_pre_hook(lambda mod, args: captured.update(args=args))
    model(idx)
    handle.remove()
    return block.mixer.attention_weights(*captured["args"])[0]


def test_static_qk_sees_positions_by_default():
    """Q/K from the token embeddings plus the learned positions: a query weighs two occurrences of one token
    differently (their keys differ by the position embeddings); without positions they weigh the same."""
    with_pos, without = _static_map(True), _static_map(False)
    t = T - 1  # a query that sees both occurrences
    assert not torch.allclose(with_pos[:, t, 2], with_pos[:, t, 9])
    torch.testing.assert_close(without[:, t, 2], without[:, t, 9])


def test_static_positions_applies_to_static_qk_only():
    with pytest.raises(Exception, match="static_positions applies to qk_source: static only"):
        load_spec(spec({"kind": "attention", "static_positions": False}))


def test_fixed_text_qk_without_a_text_is_an_error_not_zeros():
    model = build_model(load_spec(spec("fixed_text_qk")))  # built without fixed_tokens (e.g. to count parameters)
    with pytest.raises(ValueError, match="fixed_text needs the fixed token sequence"):
        model(tokens())


@pytest.mark.parametrize("standard,bias", [({"kind": "attention"}, False), ({"kind": "attention"}, True),
                                           ({"kind": "attention", "kv_heads": 1}, False),
                                           ({"kind": "attention", "kv_heads": 2}, True)])
def test_mlp_matches_the_parameters_of_the_models_standard_attention(standard, bias):
    """The no-mixing MLP has (within one hidden unit: 3d + 2 parameters) the parameters of the attention it
    replaces, also when standard attention is GQA or has biases; counted on built modules."""
    d = 48
    model_spec = {"d_model": d, "heads": 4, "standard": standard, "bias": bias, "layers": 1}
    attn = build_model(load_spec({**spec("attention"), "model": {**spec()["model"], **model_spec, "mixer": standard}}))
    mlp = build_model(load_spec({**spec("mlp"), "model": {**spec()["model"], **model_spec, "mixer": "mlp"}}))
    n_attn = sum(p.numel() for p in attn.block_list()[0].mixer.parameters())
    n_mlp = sum(p.numel() for p in mlp.block_list()[0].mixer.parameters())
    assert abs(n_mlp - n_attn) <= 3 * d + 2
    if standard.get("kv_heads") == 1:
        assert n_attn < 4 * d * d - d * d  # GQA with one kv head: far below 4d², and the MLP follows
