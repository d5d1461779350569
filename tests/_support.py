"""The helpers every test folder shares: one tiny-spec builder and one way to run the command line.

Imported as ``_support`` (tests/conftest.py puts this folder on ``sys.path``: the suite runs with
``--import-mode=importlib``, which does not); tests/conftest.py also offers them as fixtures (``tiny``,
``tiny_file``, ``cli``).
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent

TASK: dict[str, Any] = {"name": "lm", "corpus": "stdlib", "seq_len": 32, "max_bytes": 200_000}
MODEL: dict[str, Any] = {"d_model": 32, "layers": 2, "heads": 2}
TRAIN: dict[str, Any] = {"steps": 4, "batch_size": 4, "lr": 3e-3, "eval_every": 2, "eval_batches": 1, "seeds": [0]}


def tiny_spec(
    mixer: Any = None,
    *,
    name: str = "tiny",
    task: dict[str, Any] | None = None,
    train: dict[str, Any] | None = None,
    **sections_and_model: Any,
) -> dict[str, Any]:
    """A complete spec (a fresh dict) that trains in well under a second: a byte LM over the first 200 kB of
    the stdlib, d_model 32, 2 layers, 2 heads, 4 steps of batch 4.

    ``mixer`` sets ``model.mixer``; ``task`` and ``train`` update those sections; ``search=…`` and
    ``study=…`` add those sections; every other keyword is a ``model`` key (``d_model=16, layers=1``).
    """
    extra = {k: sections_and_model.pop(k) for k in ("search", "study") if k in sections_and_model}
    model = {**MODEL, **({"mixer": mixer} if mixer is not None else {}), **sections_and_model}
    spec = {"name": name, "task": {**TASK, **(task or {})}, "model": model, "train": {**TRAIN, **(train or {})}, **extra}
    return copy.deepcopy(spec)


class Cli:
    """The command line, in this process through typer's CliRunner (``cli(...)``, ``cli.json(...)``) or as
    ``python -m deconstruct`` in a fresh interpreter (``cli.run(...)``)."""

    def __call__(self, *args: Any, input: str | None = None, env: dict[str, str] | None = None) -> Any:
        """``deconstruct ARGS`` through CliRunner: a Result with exit_code, stdout, stderr, output."""
        from typer.testing import CliRunner

        from deconstruct.cli import build_app

        return CliRunner().invoke(build_app(), [str(a) for a in args], input=input, env=env)

    def json(self, *args: Any) -> Any:
        """``deconstruct ARGS --format json``: asserts exit code 0 and parses stdout."""
        result = self(*args, "--format", "json")
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    def run(self, *args: Any, paths: tuple[Path, ...] = (), env: dict[str, str] | None = None,
            timeout: float = 120, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        """``python -m deconstruct ARGS`` in a fresh interpreter, ``paths`` prepended to PYTHONPATH, without the
        caller's DECONSTRUCT_LOAD_PLUGINS (``env`` may set it), 100 columns wide."""
        environ = {k: v for k, v in os.environ.items() if k != "DECONSTRUCT_LOAD_PLUGINS"}
        environ["PYTHONPATH"] = os.pathsep.join([*map(str, paths), *filter(None, [environ.get("PYTHONPATH")])])
        environ["COLUMNS"] = "100"
        environ.update(env or {})
        return subprocess.run([sys.executable, "-m", "deconstruct", *map(str, args)], capture_output=True, text=True,
                              env=environ, timeout=timeout, cwd=cwd or REPO)


cli = Cli()


def assert_modules_agree(fused: Any, plain: Any, x: Any, out_tol: float = 1e-3, grad_tol: float = 1e-2) -> None:
    """Two copies of one mixer (same weights, e.g. a kernel backend and the PyTorch one) give the same output
    on ``x`` and the same gradients of a squared-sum loss for ``x`` and every parameter."""
    import torch

    yf, yp = fused(x), plain(x)
    torch.testing.assert_close(yf, yp, rtol=out_tol, atol=out_tol)
    gf = torch.autograd.grad(yf.square().sum(), (x, *fused.parameters()))
    gp = torch.autograd.grad(yp.square().sum(), (x, *plain.parameters()))
    for a, b in zip(gf, gp, strict=True):
        torch.testing.assert_close(a, b, rtol=grad_tol, atol=grad_tol)
