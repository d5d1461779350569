"""deconstruct.testing: the conformance suite passes good mixers and names what is wrong with bad ones."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from deconstruct import hookimpl
from deconstruct.testing import CHECKS, MixerConformance, check_light_import, check_mixer


class Loose(BaseModel):  # no extra="forbid": a misspelt option would pass silently
    scale: float = 1.0


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Leaky(nn.Module):
    """Mixes in the mean over *all* positions: sees the future."""

    def __init__(self, ctx, options):
        super().__init__()
        self.proj = nn.Linear(ctx.d_model, ctx.d_model)

    def forward(self, x, qk=None):
        return self.proj(x + x.mean(dim=1, keepdim=True))


class Unused(nn.Module):
    def __init__(self, ctx, options):
        super().__init__()
        self.proj = nn.Linear(ctx.d_model, ctx.d_model)
        self.forgotten = nn.Parameter(torch.zeros(3))

    def forward(self, x, qk=None):
        return self.proj(x)


class Unseeded(nn.Module):
    def __init__(self, ctx, options):
        super().__init__()
        self.proj = nn.Linear(ctx.d_model, ctx.d_model)
        self.register_buffer("noise", torch.randn(ctx.d_model, generator=torch.Generator().manual_seed(torch.seed())))

    def forward(self, x, qk=None):
        return self.proj(x) + self.noise


class Narrow(nn.Module):
    def __init__(self, ctx, options):
        super().__init__()
        self.proj = nn.Linear(ctx.d_model, ctx.d_model // 2)

    def forward(self, x, qk=None):
        return self.proj(x)


class Orderless(nn.Module):
    """Causal cumulative mean: mixes tokens but cannot tell their order (no positions under rope)."""

    def __init__(self, ctx, options):
        super().__init__()
        self.proj = nn.Linear(ctx.d_model, ctx.d_model, bias=False)

    def forward(self, x, qk=None):
        n = torch.arange(1, x.shape[1] + 1, device=x.device, dtype=x.dtype)[:, None]
        return self.proj(x.cumsum(1) / n)


class Good(nn.Module):
    """Causal exponential moving average (order-aware by construction), with its mixing matrix and FLOPs."""

    def __init__(self, ctx, options):
        super().__init__()
        self.proj = nn.Linear(ctx.d_model, ctx.d_model, bias=False)

    def weights(self, T):
        i = torch.arange(T)
        w = (0.8 ** (i[:, None] - i[None, :]).clamp(min=0).float()).tril()  # (T, T)
        return w / w.sum(-1, keepdim=True)

    def attention_weights(self, x, qk=None):
        B, T, _ = x.shape
        return self.weights(T).expand(B, 1, T, T)  # (B, H=1, T, T)

    def forward(self, x, qk=None):
        return self.proj(self.weights(x.shape[1]).to(x.dtype) @ x)

    def flops_per_token(self, seq_len):
        return 2 * self.proj.weight.numel() + 2 * (seq_len + 1) // 2 * self.proj.weight.shape[0]


class Unnormalised(Good):
    def attention_weights(self, x, qk=None):
        return 2 * super().attention_weights(x, qk)


class Miscounted(Good):
    def flops_per_token(self, seq_len):
        return 3  # per layer and sequence? not per token


class BadMixers:
    @hookimpl
    def register_mixers(self, register):
        for name, cls, opts in (("leaky", Leaky, Strict), ("unused", Unused, Strict), ("unseeded", Unseeded, Strict),
                                ("narrow", Narrow, Strict), ("loose", Good, Loose), ("good", Good, Strict),
                                ("orderless", Orderless, Strict), ("unnormalised", Unnormalised, Strict),
                                ("miscounted", Miscounted, Strict)):
            register(name, build=lambda ctx, o, cls=cls: cls(ctx, o), options=opts)


PLUGIN = (BadMixers(),)


@pytest.mark.parametrize(
    ("name", "check", "message"),
    [
        ("leaky", "causal", "mixer 'leaky' is not causal: changing tokens after position 0"),
        ("unused", "gradients", "parameter 'forgotten' gets no gradient"),
        ("unseeded", "deterministic", "'noise' differs between two builds with the same seed"),
        ("narrow", "shape", "forward maps (4, 32, 32) to (4, 32, 16)"),
        ("loose", "spec", "a misspelt option was accepted"),
        ("orderless", "positions", "ignores token order under positions: rope"),
        ("unnormalised", "weights", "attention_weights rows sum to 1 ± 1"),
        ("miscounted", "flops", "flops_per_token(32) = 3 is below its"),
    ],
)
def test_each_check_names_the_problem(name: str, check: str, message: str) -> None:
    with pytest.raises(AssertionError) as err:
        check_mixer(name, checks=[check], plugins=PLUGIN)
    assert message in str(err.value)


def test_a_good_mixer_passes_every_check() -> None:
    check_mixer("good", plugins=PLUGIN)
    with pytest.raises(ValueError, match="unknown check 'speed'"):
        check_mixer("good", checks=["speed"], plugins=PLUGIN)


class TestMLPMixerConformance(MixerConformance):
    """The base class at work on a built-in (collected by pytest like a plugin author's subclass)."""

    mixer_name = "mlp"


def test_base_class_has_one_test_per_check() -> None:
    tests = {n for n in dir(MixerConformance) if n.startswith("test_")}
    assert tests == {"test_output_shape", "test_causal", "test_gradients", "test_deterministic", "test_spec", "test_trains",
                     "test_positions", "test_attention_weights", "test_flops"}
    assert len(tests) == len(CHECKS)


def test_light_import_check() -> None:
    check_light_import("deconstruct.builtin.attention")
    with pytest.raises(AssertionError, match="imports torch at the top"):
        check_light_import("deconstruct.builtin._mlp")


def test_testing_module_imports_neither_pytest_nor_torch() -> None:
    code = "import sys, deconstruct.testing; print(sorted(m for m in ('pytest', 'torch') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr
