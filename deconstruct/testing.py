"""Conformance checks for token mixers: what every mixer, built-in or from a plugin, must do.

In a plugin's tests, subclass :class:`MixerConformance` (pytest collects it like any ``Test*`` class)::

    from deconstruct.testing import MixerConformance

    class TestEMA(MixerConformance):
        mixer_name = "ema"
        options = {"decay": 0.9}

or call the checks from any test runner::

    from deconstruct.testing import check_mixer
    check_mixer("ema", {"decay": 0.9})

The checks (each raises ``AssertionError`` with a sentence saying what is wrong):

- ``shape``:         ``forward(x, qk)`` maps (B, T, d) to (B, T, d), finite, for T = seq_len and a shorter T;
- ``causal``:        changing the inputs after position t never changes the outputs at positions ≤ t
                     (skipped when the task is not causal);
- ``gradients``:     every trainable parameter gets a finite, non-zero gradient, and so does the input;
- ``deterministic``: the same seed builds the same weights and buffers and gives the same output;
- ``spec``:          the spec validator accepts the mixer (uniform and hybrid layouts), rejects a misspelt
                     option, and ``spec check`` can count parameters and FLOPs/token on the meta device;
- ``trains``:        a tiny model (d_model 32, 2 layers, seq_len 32) trains a few steps to a finite loss;
- ``positions``:     with ``model.positions: rope`` the model adds no position embedding, so a mixer that mixes
                     tokens must apply :class:`deconstruct.model.Rotary` (or be order-aware by construction):
                     reordering the tokens before position t must change the output at t;
- ``weights``:       when the mixer has ``attention_weights(x, qk)``, it returns (B, H, T, T), finite, zero
                     above the diagonal for causal tasks, and each row is a distribution (non-negative, sums
                     to 1) unless the case says ``signed_weights`` (differential attention's rows are not);
- ``flops``:         when the mixer has ``flops_per_token(T)``: a positive int, at least one FLOP per
                     parameter, at most 2·parameters + 16·T·d (four times full attention over T keys), and
                     not smaller for a longer sequence.

Importing this module does not import pytest; torch is imported by the checks that need it.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from deconstruct._conformance import check_flops, check_positions, check_weights

CHECKS = ("shape", "causal", "gradients", "deterministic", "spec", "trains", "positions", "weights", "flops")


@dataclass(frozen=True)
class MixerCase:
    """A mixer with options, and the tiny setting it is checked in."""

    name: str
    options: Mapping[str, Any] = field(default_factory=dict)
    d_model: int = 32
    heads: int = 4
    seq_len: int = 32
    batch_size: int = 4
    layers: int = 2
    train_steps: int = 3
    task: Mapping[str, Any] | None = None  # default: byte-level LM over the stdlib, first 200 kB
    device: str = "cpu"
    atol: float = 1e-5  # tolerance of the causality and determinism comparisons
    allow_zero_grad: tuple[str, ...] = ()  # parameter names allowed a zero (but not a missing) gradient
    ignores_positions: str = ""  # why the mixer may ignore token order under rope (skips ``positions``)
    signed_weights: bool = False  # attention_weights rows may be negative or not sum to 1 (differential)
    registry: Any = field(default=None, compare=False)  # default: the installed plugins

    # -- what the checks build ----------------------------------------------------------------------------
    def get_registry(self) -> Any:
        if self.registry is not None:
            return self.registry
        from deconstruct.plugins import get_registry

        return get_registry()

    def spec(self, **model: Any) -> dict[str, Any]:
        """A complete spec (as a dict) whose every layer uses this mixer; ``model`` overrides model keys."""
        task = dict(self.task) if self.task is not None else {"name": "lm", "corpus": "stdlib", "max_bytes": 200_000}
        task.setdefault("seq_len", self.seq_len)
        return {
            "name": f"conformance-{self.name}",
            "task": task,
            "model": {
                "d_model": self.d_model,
                "layers": self.layers,
                "heads": self.heads,
                "mixer": {"kind": self.name, **self.options},
                **model,
            },
            "train": {
                "steps": self.train_steps,
                "batch_size": self.batch_size,
                "eval_every": self.train_steps,
                "eval_batches": 1,
                "device": self.device,
            },
        }

    def build_with(self, seed: int = 0, **model: Any) -> Any:
        """The first layer's mixer for a spec with ``model`` overrides (e.g. ``positions="rope"``)."""
        import torch

        resolved = self.resolved(**model)
        plan = resolved.layers[0]
        torch.manual_seed(seed)
        module = plan.mixer_entry.make(resolved.context(plan), plan.options)
        init = getattr(module, "init_weights", None)
        if callable(init):
            init()
        return module.to(self.device)

    def resolved(self, **model: Any) -> Any:
        from deconstruct.spec import load_spec

        return load_spec(self.spec(**model), registry=self.get_registry())

    def build(self, seed: int = 0) -> tuple[Any, Any]:
        """(module, ctx): the first layer's mixer, built as the model builds it, on ``device``."""
        import torch

        resolved = self.resolved()
        plan = resolved.layers[0]
        ctx = resolved.context(plan)
        torch.manual_seed(seed)
        module: Any = plan.mixer_entry.make(ctx, plan.options)
        assert module is not None, f"mixer {self.name!r}: build returned None"
        assert isinstance(module, torch.nn.Module), f"mixer {self.name!r}: build returned {type(module).__name__}, not an nn.Module"
        init = getattr(module, "init_weights", None)  # as the Transformer does after its own init
        if callable(init):
            init()
        return module.to(self.device), ctx

    def inputs(self, module: Any, T: int | None = None, seed: int = 0) -> tuple[Any, Any]:
        """(x, qk) as the model would pass them: qk is None for ``qk_source="hidden"``."""
        import torch

        T = T or self.seq_len
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(self.batch_size, T, self.d_model, generator=g)  # (B, T, d)
        source = getattr(module, "qk_source", "hidden")
        if source == "hidden":
            qk = None
        elif source == "static":  # the token embeddings of the same input: (B, T, d)
            qk = torch.randn(self.batch_size, T, self.d_model, generator=g)
        else:  # a fixed stream shared by the batch: (1, T, d)
            qk = torch.randn(1, T, self.d_model, generator=g)
        return x.to(self.device), None if qk is None else qk.to(self.device)


def _forward(case: MixerCase, module: Any, x: Any, qk: Any) -> Any:
    y = module(x, qk)
    assert hasattr(y, "shape"), f"mixer {case.name!r}: forward returned {type(y).__name__}, not a tensor"
    return y


# -- the checks ----------------------------------------------------------------------------------------------
def check_shape(case: MixerCase) -> None:
    """(B, T, d) → (B, T, d), finite, at the full and a shorter sequence length."""
    import torch

    module, _ = case.build()
    module.eval()
    with torch.no_grad():
        for T in dict.fromkeys((case.seq_len, max(1, case.seq_len // 2 - 1))):  # full length, then shorter
            x, qk = case.inputs(module, T)
            y = _forward(case, module, x, qk)
            assert tuple(y.shape) == tuple(x.shape), (
                f"mixer {case.name!r}: forward maps {tuple(x.shape)} to {tuple(y.shape)}; it must keep (B, T, d)"
            )
            assert torch.isfinite(y).all(), f"mixer {case.name!r}: non-finite output at T={T}"


def check_causal(case: MixerCase) -> None:
    """Changing inputs after position t leaves outputs at positions ≤ t unchanged (causal tasks only)."""
    import torch

    module, ctx = case.build()
    if not ctx.causal:
        return
    module.eval()
    x, qk = case.inputs(module)
    g = torch.Generator().manual_seed(1)
    T = x.shape[1]
    with torch.no_grad():
        y = _forward(case, module, x, qk)
        for t in sorted({0, T // 3, T // 2, T - 2}):
            x2 = x.clone()
            x2[:, t + 1 :] = torch.randn(x2[:, t + 1 :].shape, generator=g).to(x.device)
            qk2 = qk
            if qk is not None and getattr(module, "qk_source", "hidden") == "static":  # E of the same input
                qk2 = qk.clone()
                qk2[:, t + 1 :] = torch.randn(qk2[:, t + 1 :].shape, generator=g).to(qk.device)
            y2 = _forward(case, module, x2, qk2)
            diff = (y2[:, : t + 1] - y[:, : t + 1]).abs().max().item()
            assert diff <= case.atol, (
                f"mixer {case.name!r} is not causal: changing tokens after position {t} changed the output "
                f"at positions ≤ {t} by up to {diff:.3g}"
            )


def check_gradients(case: MixerCase) -> None:
    """Every trainable parameter (and the input) gets a finite, non-zero gradient."""
    import torch

    module, _ = case.build()
    module.train()
    x, qk = case.inputs(module)
    x.requires_grad_(True)
    y = _forward(case, module, x, qk)
    w = torch.randn(y.shape, generator=torch.Generator().manual_seed(2)).to(y.device)
    loss = (y * w).sum()
    aux = getattr(module, "aux_loss", None)
    if aux is not None:
        assert aux.dim() == 0, f"mixer {case.name!r}: aux_loss must be a scalar tensor, got shape {tuple(aux.shape)}"
        loss = loss + aux
    loss.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all(), f"mixer {case.name!r}: no finite gradient reaches the input x"
    assert x.grad.abs().sum() > 0, f"mixer {case.name!r}: the output does not depend on the input x"
    trainable = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
    for name, p in trainable:
        assert p.grad is not None, (
            f"mixer {case.name!r}: parameter {name!r} gets no gradient (unused in forward? freeze it with "
            f"requires_grad_(False) or make it a buffer)"
        )
        assert torch.isfinite(p.grad).all(), f"mixer {case.name!r}: parameter {name!r} has a non-finite gradient"
        if name not in case.allow_zero_grad:
            assert p.grad.abs().sum() > 0, f"mixer {case.name!r}: parameter {name!r} has an all-zero gradient"


def check_deterministic(case: MixerCase) -> None:
    """The same seed builds identical weights and buffers, and the same input gives the same output."""
    import torch

    (m1, _), (m2, _) = case.build(seed=0), case.build(seed=0)
    s1, s2 = m1.state_dict(), m2.state_dict()
    assert s1.keys() == s2.keys(), f"mixer {case.name!r}: two builds have different state_dict keys"
    for k in s1:
        assert torch.equal(s1[k], s2[k]), (
            f"mixer {case.name!r}: {k!r} differs between two builds with the same seed (draw random values "
            f"from torch's global generator, which the seed sets, not from an unseeded generator)"
        )
    m1.eval()
    m2.eval()
    x, qk = case.inputs(m1)
    with torch.no_grad():
        a, b, c = _forward(case, m1, x, qk), _forward(case, m1, x, qk), _forward(case, m2, x, qk)
    assert (a - b).abs().max().item() <= case.atol, f"mixer {case.name!r}: two forwards of the same input differ"
    assert (a - c).abs().max().item() <= case.atol, f"mixer {case.name!r}: two builds with the same seed give different outputs"


def check_spec(case: MixerCase) -> None:
    """The validator accepts the mixer in uniform and hybrid layouts and rejects a misspelt option; the
    model can be built on the meta device (what ``spec check`` does) with positive parameters and FLOPs."""
    import json

    import torch

    from deconstruct._errors import SpecError
    from deconstruct.model import build_model
    from deconstruct.spec import load_spec

    for layout in ("uniform", "hybrid"):
        resolved = case.resolved(layout=layout)
        relaxed = [p for p in resolved.layers if p.mixer == case.name]
        assert relaxed, f"mixer {case.name!r}: no layer uses it after resolving the {layout} layout"
        json.dumps(resolved.config())  # options must be plain data: they are stored and hashed
        assert resolved.config_hash() == case.resolved(layout=layout).config_hash(), (
            f"mixer {case.name!r}: the config hash is not stable"
        )
        with torch.device("meta"):
            model = build_model(resolved)
        params = model.num_params()
        flops = model.flops_per_token(case.seq_len)
        assert params > 0 and isinstance(flops, int) and flops > 0, (
            f"mixer {case.name!r}: parameters ({params}) and FLOPs/token ({flops}) must be positive"
        )
    bad = case.spec()
    bad["model"]["mixer"]["definitely_not_an_option"] = 1
    try:
        load_spec(bad, registry=case.get_registry())
    except SpecError:
        pass
    else:
        raise AssertionError(
            f"mixer {case.name!r}: a misspelt option was accepted; give its options model "
            f"model_config = ConfigDict(extra='forbid')"
        )


def check_trains(case: MixerCase) -> None:
    """A tiny model with this mixer in every layer trains ``train_steps`` steps to a finite loss."""
    import math

    from deconstruct.train import train

    result = train(case.resolved(), seed=0, device=case.device)
    assert result.steps == case.train_steps, f"mixer {case.name!r}: trained {result.steps} of {case.train_steps} steps"
    assert math.isfinite(result.val_loss), f"mixer {case.name!r}: validation loss is {result.val_loss}"


CHECK_FUNCS: dict[str, Callable[[MixerCase], None]] = {
    "shape": check_shape,
    "causal": check_causal,
    "gradients": check_gradients,
    "deterministic": check_deterministic,
    "spec": check_spec,
    "trains": check_trains,
    "positions": check_positions,
    "weights": check_weights,
    "flops": check_flops,
}


def registry_with(plugins: Iterable[Any] = ()) -> Any:
    """The installed plugins' registry, plus ``plugins`` (modules or objects) not yet installed."""
    plugins = tuple(plugins)
    if not plugins:
        from deconstruct.plugins import get_registry

        return get_registry()
    from deconstruct.plugins import build_registry

    return build_registry(extra_plugins=plugins)


def check_mixer(
    name: str,
    options: Mapping[str, Any] | None = None,
    *,
    checks: Iterable[str] = CHECKS,
    plugins: Iterable[Any] = (),
    **settings: Any,
) -> None:
    """Run the conformance ``checks`` on mixer ``name`` with ``options``.

    ``plugins``: plugin modules to register in addition to the installed ones (to check a plugin before
    ``pip install``). ``settings``: fields of :class:`MixerCase` (d_model, heads, seq_len, device, …).
    """
    case = MixerCase(name, dict(options or {}), registry=registry_with(plugins), **settings)
    for check in checks:
        if check not in CHECK_FUNCS:
            raise ValueError(f"unknown check {check!r}; checks: {', '.join(CHECKS)}")
        CHECK_FUNCS[check](case)


def check_light_import(module: str, heavy: Iterable[str] = ("torch",)) -> None:
    """Importing ``module`` (a plugin's hook module) in a fresh interpreter must not import ``heavy``:
    the CLI imports every plugin at start-up."""
    code = (
        f"import sys, importlib; importlib.import_module({module!r}); "
        f"print(','.join(m for m in {tuple(heavy)!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, f"importing {module!r} failed: {out.stderr.strip().splitlines()[-1:]}"
    loaded = out.stdout.strip()
    assert not loaded, f"importing {module!r} imports {loaded} at the top; import it inside build() instead"


class MixerConformance:
    """Base class of a mixer's conformance tests. Subclass it as ``Test…`` and set ``mixer_name``:

    ``options`` (the mixer's options), ``plugins`` (modules to register without installing), and any
    :class:`MixerCase` setting as a class attribute (``d_model``, ``heads``, ``seq_len``, ``batch_size``,
    ``layers``, ``train_steps``, ``task``, ``device``, ``atol``, ``allow_zero_grad``, ``ignores_positions``,
    ``signed_weights``).
    """

    mixer_name: str = ""
    options: Mapping[str, Any] = {}
    plugins: tuple[Any, ...] = ()

    d_model = 32
    heads = 4
    seq_len = 32
    batch_size = 4
    layers = 2
    train_steps = 3
    task: Mapping[str, Any] | None = None
    device = "cpu"
    atol = 1e-5
    allow_zero_grad: tuple[str, ...] = ()
    ignores_positions = ""
    signed_weights = False

    def mixer_case(self) -> MixerCase:
        if not self.mixer_name:
            raise AssertionError(f"{type(self).__name__}: set mixer_name = '<your mixer>'")
        case = MixerCase(self.mixer_name, dict(self.options), registry=registry_with(self.plugins))
        return replace(
            case,
            d_model=self.d_model, heads=self.heads, seq_len=self.seq_len, batch_size=self.batch_size,
            layers=self.layers, train_steps=self.train_steps, task=self.task, device=self.device,
            atol=self.atol, allow_zero_grad=tuple(self.allow_zero_grad),
            ignores_positions=self.ignores_positions, signed_weights=self.signed_weights,
        )

    def test_output_shape(self) -> None:
        check_shape(self.mixer_case())

    def test_causal(self) -> None:
        case = self.mixer_case()
        if not case.build()[1].causal:
            import pytest

            pytest.skip("the task is not causal")
        check_causal(case)

    def test_gradients(self) -> None:
        check_gradients(self.mixer_case())

    def test_deterministic(self) -> None:
        check_deterministic(self.mixer_case())

    def test_spec(self) -> None:
        check_spec(self.mixer_case())

    def test_trains(self) -> None:
        check_trains(self.mixer_case())

    def test_positions(self) -> None:
        check_positions(self.mixer_case())

    def test_attention_weights(self) -> None:
        check_weights(self.mixer_case())

    def test_flops(self) -> None:
        check_flops(self.mixer_case())


__all__ = [
    "CHECKS",
    "MixerCase",
    "MixerConformance",
    "check_causal",
    "check_deterministic",
    "check_flops",
    "check_gradients",
    "check_light_import",
    "check_mixer",
    "check_positions",
    "check_shape",
    "check_spec",
    "check_trains",
    "check_weights",
    "registry_with",
]
