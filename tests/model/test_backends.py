"""Which kernel runs: ``auto`` is SDPA for softmax on every device (never the untimed Triton kernel), an
unavailable ``triton`` is one clear error, and spec check / every run say what each layer used."""

from __future__ import annotations

import pytest
import torch

from deconstruct._errors import DeconstructError, RunError, SpecError
from deconstruct.model import _attend, attend, build_model, pick_backend
from deconstruct.plugins import get_registry
from deconstruct.spec import load_spec
from deconstruct.train import train

CUDA = torch.device("cuda")


@pytest.fixture
def triton_everywhere(monkeypatch):
    """Pretend the Triton kernel imports and runs (as on a GPU machine): auto must still not pick it."""
    monkeypatch.setattr(_attend, "_triton_imports", lambda: True)


def test_auto_is_sdpa_on_cpu_and_on_cuda_with_triton(triton_everywhere):
    assert pick_backend("auto", torch.device("cpu")) == "sdpa"
    assert pick_backend("auto", CUDA) == "sdpa"
    assert pick_backend("triton", CUDA) == "triton"  # only when asked for


def test_triton_where_it_cannot_run_is_one_line():
    with pytest.raises(RunError, match="needs a CUDA device"):
        pick_backend("triton", torch.device("cpu"))
    with pytest.raises(ValueError, match="unknown attention backend"):
        pick_backend("flash", torch.device("cpu"))


def test_auto_calls_sdpa(monkeypatch):
    calls = []
    real = torch.nn.functional.scaled_dot_product_attention
    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention",
                        lambda *a, **kw: calls.append(1) or real(*a, **kw))
    q, k, v = (torch.randn(1, 2, 5, 4) for _ in range(3))
    attend(q, k, v, backend="auto")
    assert calls == [1]


def _buildable_specs(tiny):
    """(name, resolved) for every registered mixer that a causal LM spec accepts with default options."""
    registry = get_registry()
    for name in registry.names("mixer"):
        spec = {**tiny, "model": {**tiny["model"], "backend": "auto", "mixer": {"kind": name}}}
        try:
            yield name, load_spec(spec)
        except (SpecError, DeconstructError):  # e.g. channel attention is non-causal only
            continue


def test_auto_never_selects_triton_for_any_mixer_where_sdpa_exists(tiny, triton_everywhere):
    seen = 0
    for name, resolved in _buildable_specs(tiny):
        with torch.device("meta"):
            model = build_model(resolved)
        used = model.backends(CUDA)
        assert "triton" not in used, (name, used)
        assert "unavailable" not in used, (name, used)
        seen += 1
    assert seen >= 5  # attention, mlp, window, biformer, moh, differential, … all checked


def test_every_layer_names_its_backend(tiny):
    tiny["model"]["layers"] = 3
    tiny["model"]["overrides"] = {2: {"kind": "attention", "form": "approximate"}, 3: {"kind": "mlp"}}
    resolved = load_spec(tiny)
    model = build_model(resolved)
    assert model.backends("cpu") == ["sdpa", "chunked-taylor", "pytorch"]
    result = train(resolved, with_diagnostics=False)
    assert result.metrics["attention_backend"] == "sdpa,chunked-taylor,pytorch"


def test_spec_check_shows_backends_and_survives_an_unavailable_kernel(tiny, tiny_file):
    from deconstruct.cli.spec import describe_spec

    tiny["model"]["backend"] = "eager"
    info = describe_spec(tiny_file(tiny), [])
    assert [layer["backend"] for layer in info["layers"]] == ["eager", "eager"]
    if not torch.cuda.is_available():
        info = describe_spec(tiny_file(tiny), ["model.backend=triton"])
        assert {layer["backend"] for layer in info["layers"]} == {"unavailable"}
        with pytest.raises(RunError):
            train(load_spec(tiny_file(tiny), ["model.backend=triton"]), with_diagnostics=False)
