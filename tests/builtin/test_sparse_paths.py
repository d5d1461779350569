"""``window`` and ``biformer`` at their real cost (issue 13): with ``backend: auto`` on the CPU they run
blocked (query blocks × their few key blocks through SDPA, or routed regions gathered per token), equal to
the dense masked reference (fp64) in outputs and every gradient, causal, and never build a (T, T) tensor.
FlexAttention's forward (the CUDA path) is checked against the same reference on the CPU."""

from __future__ import annotations

import dataclasses
import itertools
import warnings

import _mixer_helpers as helpers
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from deconstruct.builtin import _flex
from deconstruct.builtin._biformer import BiLevelRoutingAttention, route, routing_mask
from deconstruct.builtin._window import WindowAttention
from deconstruct.builtin.biformer import BiFormerOptions
from deconstruct.builtin.window import WindowOptions

CASES = {  # mixer → (module, options class, option sets)
    "window": (WindowAttention, WindowOptions, [{"size": 1}, {"size": 4}, {"size": 5, "dilation": 2},
                                               {"size": 3, "dilation": 3}, {"size": 40}]),
    "biformer": (BiLevelRoutingAttention, BiFormerOptions, [{"region_size": 4, "top_k": 2}, {"region_size": 5, "top_k": 3},
                                                           {"region_size": 1, "top_k": 3}, {"region_size": 3, "top_k": 20}]),
}


def pair(name: str, options: dict, *, T: int, d: int, heads: int, causal: bool):
    """The same mixer (same weights) twice: backend auto (the sparse path) and sdpa (the dense reference)."""
    module, opts_cls, _ = CASES[name]
    ctx = helpers.make_ctx(d=d, heads=heads, T=T, causal=causal)
    sparse = helpers.build_mixer(module, opts_cls, options, dataclasses.replace(ctx, backend="auto"))
    dense = helpers.build_mixer(module, opts_cls, options, ctx)
    return sparse, dense


def both_paths(m, x: torch.Tensor):
    """The mixer's output through its sparse path and through its dense reference (same weights, same x)."""
    q, k, v = m._project(x, None)
    return m._output(m.sparse_attention(q, k, v)), m._output(m.dense_attention(q, k, v))


@pytest.mark.parametrize("name, causal", [("window", True), ("window", False), ("biformer", False)])
def test_sparse_path_equals_dense_reference_with_gradients(name, causal):
    """(Causal biformer has no blocked path: its routing is per token, see BiLevelRoutingAttention.)"""
    for options, (T, d, heads) in itertools.product(CASES[name][2], [(13, 12, 3), (37, 16, 2)]):
        m = helpers.build_mixer(CASES[name][0], CASES[name][1], options, helpers.make_ctx(d=d, heads=heads, T=T, causal=causal))
        x = helpers.seeded_input(B=2, T=T, d=d).requires_grad_()
        g = torch.randn(2, T, d, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
        ys, yd = both_paths(m, x)
        gs = torch.autograd.grad(ys, (x, *m.parameters()), g, retain_graph=True)
        gd = torch.autograd.grad(yd, (x, *m.parameters()), g)
        where = f"{name} {options} T={T}"
        torch.testing.assert_close(ys, yd, rtol=1e-12, atol=1e-12, msg=lambda m, w=where: f"{w}: {m}")
        for a, b in zip(gs, gd, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12, msg=lambda m, w=where: f"{w} grad: {m}")


@pytest.mark.parametrize("name, options, causal, T, path", [
    ("window", {"size": 16}, True, 512, "window-blocked"), ("window", {"size": 16, "dilation": 2}, False, 64, "window-blocked"),
    ("window", {"size": 16, "dilation": 3}, True, 64, "dense-mask"),  # covers most of the sequence
    ("biformer", {"region_size": 16, "top_k": 4}, False, 256, "biformer-blocked"),
    ("biformer", {"region_size": 16, "top_k": 4}, False, 128, "dense-mask"),
    ("biformer", {"region_size": 16, "top_k": 4}, True, 4096, "dense-mask")])  # per-token routing
def test_auto_takes_the_sparse_path_where_it_pays(name, options, causal, T, path):
    sparse, dense = pair(name, options, T=T, d=16, heads=2, causal=causal)
    assert sparse.backend_for(torch.device("cpu")) == path
    assert dense.backend_for(torch.device("cpu")) == "dense-mask"
    x = helpers.seeded_input(B=1, T=T, d=16)
    torch.testing.assert_close(sparse(x), dense(x), rtol=1e-12, atol=1e-12)  # whichever path runs


def test_blocked_window_is_causal():
    T, d, name = 23, 16, "window"
    m, _ = pair(name, CASES[name][2][2], T=T, d=d, heads=2, causal=True)
    x = helpers.seeded_input(B=1, T=T, d=d)
    y = both_paths(m, x)[0]
    for i in (0, 7, 15):
        x2 = x.clone()
        x2[:, i + 1 :] += 1.0
        y2 = both_paths(m, x2)[0]
        torch.testing.assert_close(y2[:, : i + 1], y[:, : i + 1], rtol=0, atol=0)
        assert not torch.allclose(y2[:, i + 1 :], y[:, i + 1 :])


class Shapes(TorchDispatchMode):
    """Every tensor shape any aten op returns (what was really computed, not only the Python calls)."""

    def __init__(self):
        super().__init__()
        self.shapes: list[tuple[int, ...]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for r in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(r, torch.Tensor):
                self.shapes.append(tuple(r.shape))
        return out


@pytest.mark.parametrize("name, options, causal", [("window", {"size": 16}, True), ("window", {"size": 16}, False),
                                                   ("window", {"size": 8, "dilation": 3}, True),
                                                   ("biformer", {"region_size": 16, "top_k": 3}, False)])
def test_sparse_path_never_builds_a_t_by_t_tensor(name, options, causal):
    T, d = 512, 16
    sparse, dense = pair(name, options, T=T, d=d, heads=2, causal=causal)
    x = helpers.seeded_input(B=1, T=T, d=d).float().requires_grad_()
    assert sparse.backend_for(x.device) == f"{name}-blocked"
    for m, expect_big in ((sparse.float(), False), (dense.float(), True)):  # the dense one shows the check has teeth
        with Shapes() as rec:
            m(x).sum().backward()
        big = [s for s in rec.shapes if sum(n >= T for n in s) >= 2]
        assert bool(big) == expect_big, (m.backend_for(x.device), big[:3])


def test_routing_of_the_sparse_and_dense_paths_is_one_routing():
    """The dense mask is built from :func:`route`: causal picks are earlier regions, invalid picks only
    where fewer earlier regions exist; every row keeps its own key."""
    T, S, top_k = 29, 4, 3
    q, k = (torch.randn(2, 3, T, 8, generator=torch.Generator().manual_seed(i)) for i in (1, 2))
    regions, valid = route(q, k, S, top_k, causal=True)
    own = (torch.arange(T) // S).view(1, 1, T, 1)
    assert (regions[valid] < own.expand_as(regions)[valid]).all()
    assert ((~valid).sum(-1) == (top_k - 1 - own.squeeze(-1)).clamp(min=0)).all()
    assert routing_mask(q, k, S, top_k, True).diagonal(dim1=-2, dim2=-1).all()


def test_flex_forward_equals_dense_reference_on_cpu():
    """FlexAttention (the CUDA path; eager, dense, on the CPU) under the same patterns: window and routing."""
    warnings.filterwarnings("ignore", message=".*flex_attention.*")
    for name, options, causal in (("window", {"size": 5, "dilation": 2}, True), ("window", {"size": 4}, False),
                                  ("biformer", {"region_size": 4, "top_k": 2}, True),
                                  ("biformer", {"region_size": 5, "top_k": 2}, False)):
        _, dense = pair(name, options, T=21, d=16, heads=2, causal=causal)
        x = helpers.seeded_input(B=2, T=21, d=16)
        with torch.no_grad():  # FlexAttention has no CPU backward
            q, k, v = dense._project(x, None)
        torch.testing.assert_close(dense.flex_attention(q, k, v), dense.dense_attention(q, k, v),
                                   rtol=1e-12, atol=1e-12, msg=lambda m, w=f"{name} {options}": f"{w}: {m}")
    assert not _flex.flex_runs_on(torch.device("cpu"))  # on the CPU the blocked path is the fast one


@pytest.mark.gpu
@pytest.mark.parametrize("name, options", [("window", {"size": 128}), ("window", {"size": 64, "dilation": 2}),
                                           ("biformer", {"region_size": 64, "top_k": 4})])
def test_flex_forward_and_backward_on_gpu(name, options):
    T, d = 1024, 256
    sparse, dense = pair(name, options, T=T, d=d, heads=4, causal=True)
    sparse, dense = sparse.float().cuda(), dense.float().cuda()
    assert sparse.backend_for(torch.device("cuda")) == f"{name}-flex"
    x = helpers.seeded_input(B=2, T=T, d=d).float().cuda().requires_grad_()
    ys, yd = sparse(x), dense(x)
    torch.testing.assert_close(ys, yd, rtol=2e-3, atol=2e-3)
    gs = torch.autograd.grad(ys.square().sum(), (x, *sparse.parameters()))
    gd = torch.autograd.grad(yd.square().sum(), (x, *dense.parameters()))
    for a, b in zip(gs, gd, strict=True):
        torch.testing.assert_close(a, b, rtol=2e-2, atol=2e-2)
