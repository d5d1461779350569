"""A non-editable install (a real wheel) gives a working tool: built-ins and kernels ship namespaced."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(REPO)],
        check=True, capture_output=True,
    )
    return next(out.glob("deconstruct-*.whl"))


def test_wheel_ships_builtin_and_kernels_under_the_namespace(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "deconstruct/builtin/attention.py" in names
    assert "deconstruct/kernels/flash_attention/triton_kernel.py" in names
    assert not any(n.startswith(("plugins/", "kernels/")) for n in names)  # no top-level plugins/kernels module
    # every package folder of the source tree is in the wheel
    for src, dst in (("deconstruct", "deconstruct"), ("plugins/builtin", "deconstruct/builtin"), ("kernels", "deconstruct/kernels")):
        for init in (REPO / src).rglob("__init__.py"):
            rel = init.relative_to(REPO / src).as_posix()
            assert f"{dst}/{rel}" in names, f"{src}/{rel} is missing from the wheel (add it to pyproject packages)"


def test_installed_wheel_runs_spec_check_and_train(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True)
    spec = tmp_path / "s.yaml"
    spec.write_text("name: w\ntask: {name: lm, seq_len: 16, max_bytes: 100000}\nmodel: {d_model: 16, layers: 1, heads: 2}\n"
                    "train: {steps: 2, batch_size: 2, eval_batches: 1}\n")
    env = {**os.environ, "PYTHONPATH": str(target)}
    code = "import deconstruct, deconstruct.builtin, deconstruct.kernels; print(deconstruct.__file__)"
    where = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, cwd=tmp_path)
    assert where.stdout.startswith(str(target))
    for args in (["spec", "check", str(spec)], ["train", str(spec), "--format", "json"]):
        proc = subprocess.run([sys.executable, "-m", "deconstruct", *args], env=env, capture_output=True, text=True, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
