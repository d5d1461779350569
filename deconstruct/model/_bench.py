"""Forward+backward time of every token mixer × backend × sequence length (``deconstruct bench attention
--variants``). Returns rows, never prints.

Each row times one layer's token mixer alone — built exactly as a spec with ``model.mixer.kind: <variant>``
and ``model.backend: <backend>`` would build it, in a causal LM (the cloze task for non-causal-only mixers) —
on a random input (B, T, d) with gradients, gradients reset every step as in training. ``runs`` is what
computed the mixing (the mixer's ``backend_for``); backends that resolve to a path already timed for that
variant are not timed twice. A backend or variant that cannot run here gives a row whose numbers are None
and whose ``error`` says why in one line.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterable
from typing import Any

import torch

from deconstruct._errors import DeconstructError

BACKENDS = ("auto", "eager", "sdpa", "triton")  # compile only on request: it takes minutes per variant on a CPU


def _layer_spec(variant: str, backend: str, T: int, d_model: int, heads: int, task: str = "lm") -> dict[str, Any]:
    return {"name": "bench", "task": {"name": task, "corpus": "stdlib", "seq_len": T},
            "model": {"d_model": d_model, "heads": heads, "layers": 1, "backend": backend, "mixer": {"kind": variant}}}


def _build_layer(variant: str, backend: str, T: int, d_model: int, heads: int) -> Any:
    """The one-layer model of ``variant`` in a causal LM, or in the bidirectional cloze task for a mixer
    that only supports non-causal attention (e.g. channel attention)."""
    from deconstruct.model import build_model
    from deconstruct.spec import load_spec

    try:
        return build_model(load_spec(_layer_spec(variant, backend, T, d_model, heads)))
    except DeconstructError as causal_error:
        try:
            return build_model(load_spec(_layer_spec(variant, backend, T, d_model, heads, task="cloze")))
        except DeconstructError:
            raise causal_error from None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:240]


def benchmark_mixers(
    variants: Iterable[str] | None = None,
    backends: Iterable[str] = BACKENDS,
    seq_lens: Iterable[int] = (256, 1024),
    device: str | torch.device = "cpu",
    batch: int = 1,
    d_model: int = 64,
    heads: int = 4,
    repeats: int = 3,
) -> list[dict[str, Any]]:
    """Rows {variant, backend, runs, seq_len, ms_fwd_bwd, tokens_per_s, error}; ``variants`` default: every
    registered mixer."""
    from deconstruct.plugins import get_registry

    device = torch.device(device)
    names = list(variants) if variants is not None else get_registry().names("mixer")
    rows: list[dict[str, Any]] = []
    for variant in names:
        for T in seq_lens:
            timed_paths: set[str] = set()
            for backend in backends:
                row: dict[str, Any] = {"variant": variant, "backend": backend, "runs": None, "seq_len": T,
                                       "ms_fwd_bwd": None, "tokens_per_s": None, "error": None}
                try:
                    model = _build_layer(variant, backend, T, d_model, heads)
                    block = model.block_list()[0]
                    row["runs"] = model.backends(device)[0]
                    if row["runs"] in timed_paths:
                        continue  # the same computation as a backend already timed
                    timed_paths.add(row["runs"])
                    rows.append(row)
                    row["ms_fwd_bwd"] = _time_mixer(block, T, d_model, batch, device, repeats)
                    row["tokens_per_s"] = batch * T / (row["ms_fwd_bwd"] / 1e3)
                except (DeconstructError, RuntimeError, ValueError, NotImplementedError) as exc:
                    row["error"] = _one_line(exc)
                    if row not in rows:
                        rows.append(row)
    return rows


def _time_mixer(block: Any, T: int, d: int, batch: int, device: torch.device, repeats: int) -> float:
    """Median milliseconds of mixer(x).sum().backward() for x (batch, T, d)."""
    mixer = block.mixer.to(device)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, T, d, generator=gen).to(device).requires_grad_()
    src = block.qk_source  # a mixer reading queries/keys from another stream gets one of the right shape
    qk = None if src == "hidden" else torch.randn(batch if src == "static" else 1, T, d, generator=gen).to(device)

    def step() -> None:
        mixer.zero_grad(set_to_none=True)  # as a training step does: no accumulation into old gradients
        x.grad = None
        out = mixer(x, qk)
        out.sum().backward()

    step()  # warm-up (and compilation, for compiled paths)
    times = []
    for _ in range(max(1, repeats)):
        _sync(device)
        t0 = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3
