"""The attention mixer takes its fast paths inside a real model (issue 3): every softmax variant reaches
``F.scaled_dot_product_attention``; ``form: approximate`` and ``form: non_approximate`` never call it and
never materialise a (T, T) tensor — they stay chunked. Checked with a ``TorchFunctionMode`` that sees every
torch call made during a forward."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from _support import tiny_spec
from torch.overrides import TorchFunctionMode

from deconstruct.model import build_model
from deconstruct.spec import load_spec


class Recorder(TorchFunctionMode):
    """Counts SDPA calls and records the shape of every tensor result (only while ``active``)."""

    def __init__(self):
        super().__init__()
        self.sdpa_calls: list[torch.Size] = []
        self.shapes: list[tuple[str, torch.Size]] = []
        self.active = True

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if self.active:
            if func is F.scaled_dot_product_attention:
                self.sdpa_calls.append(out.shape)
            results = out if isinstance(out, (tuple, list)) else (out,)
            for r in results:
                if isinstance(r, torch.Tensor):
                    self.shapes.append((getattr(func, "__name__", str(func)), r.shape))
        return out


def spec(mixer: dict, seq_len: int, backend: str = "auto") -> dict:
    return tiny_spec({"kind": "attention", **mixer}, task={"seq_len": seq_len}, backend=backend)


def model_for(mixer: dict, seq_len: int, backend: str = "auto"):
    torch.manual_seed(0)
    model = build_model(load_spec(spec(mixer, seq_len, backend)), fixed_tokens=torch.arange(seq_len) % 256)
    return model.eval()


SOFTMAX_VARIANTS = {
    "hidden": {},
    "static": {"qk_source": "static"},
    "random": {"qk_source": "random"},
    "fixed_text": {"qk_source": "fixed_text"},
    "qk_symmetric": {"qk": "symmetric"},
    "qk_collapsed": {"qk": "collapsed"},
    "qk_frozen": {"qk": "frozen"},
    "vo_collapsed": {"vo": "collapsed"},
    "vo_identity": {"vo": "identity"},
}


@pytest.mark.parametrize("backend", ["auto", "sdpa"])
@pytest.mark.parametrize("name", SOFTMAX_VARIANTS)
def test_softmax_variants_call_sdpa(name, backend):
    T = 64
    model = model_for(SOFTMAX_VARIANTS[name], T, backend)
    idx = torch.randint(0, 256, (2, T))
    with torch.no_grad(), Recorder() as rec:
        logits = model(idx)
    assert logits.shape == (2, T, 256)
    # at least one call per layer (fixed streams run through the blocks too: more calls then)
    assert len(rec.sdpa_calls) >= 2, f"{name}: SDPA was bypassed"
    for shape in rec.sdpa_calls:
        assert shape[0] in (1, 2) and shape[1] == 2 and shape[2] == T  # (B, H, T, Dv)
    assert ("scaled_dot_product_attention", rec.sdpa_calls[0]) in rec.shapes


# T and chunk sizes where a (T, T) tensor would appear if the chunked path were bypassed: non_approximate
# at its default chunk (64) with T = 256 (largest chunked tensor (…, 64, 64), (…, N, N) = (4, 4));
# approximate with chunk 64 at T = 512 (largest: (…, C, d²) = (64, 256) and states (…, 256, 17)).
CHUNKED = {
    "non_approximate": ({"form": "non_approximate"}, 256),
    "approximate": ({"form": "approximate", "chunk_size": 64}, 512),
    "approximate_separate": ({"form": "approximate", "normalization": "separate", "chunk_size": 64}, 512),
}


@pytest.mark.parametrize("name", CHUNKED)
def test_chunked_forms_never_materialise_t_by_t(name):
    options, T = CHUNKED[name]
    model = model_for(options, T)
    rec = Recorder()
    rec.active = False
    for block in model.block_list():  # record inside the mixers only (the logits (B, T, 256) would match)
        block.mixer.register_forward_pre_hook(lambda *_: setattr(rec, "active", True))
        block.mixer.register_forward_hook(lambda *_: setattr(rec, "active", False))
    idx = torch.randint(0, 256, (1, T))
    with torch.no_grad(), rec:
        model(idx)
    assert rec.shapes, "nothing recorded inside the mixers"
    assert rec.sdpa_calls == []
    big = [(f, s) for f, s in rec.shapes if len(s) >= 2 and s[-1] >= 256 and s[-2] >= 256]
    assert big == [], f"{name} materialised (T, T)-sized tensors: {big[:5]}"


def test_recorder_would_see_a_t_by_t_tensor():
    """The check above has teeth: the O(T²) mixing matrix of the same mixer is caught by it."""
    options, T = CHUNKED["non_approximate"]
    model = model_for(options, T)
    mixer = model.block_list()[0].mixer
    x = torch.randn(1, T, 32)
    with torch.no_grad(), Recorder() as rec:
        mixer.attention_weights(x)
    assert any(s[-1] >= T and s[-2] >= T for _, s in rec.shapes if len(s) >= 2)


def test_recorder_sees_a_bypassed_sdpa():
    """And the SDPA count has teeth: the eager backend (the O(T²) reference) makes no SDPA call."""
    model = model_for({}, 64, backend="eager")
    with torch.no_grad(), Recorder() as rec:
        model(torch.randint(0, 256, (1, 64)))
    assert rec.sdpa_calls == []
    assert any(len(s) >= 2 and s[-1] == 64 and s[-2] == 64 for _, s in rec.shapes)  # the (T, T) scores
