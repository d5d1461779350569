"""Test setup for deconstruct.kernels.

Without CUDA, Triton kernels run on the CPU through Triton's interpreter. The interpreter is
chosen when a kernel is *decorated* (@triton.jit reads TRITON_INTERPRET), so the variable is set
here, before any test module imports the kernel code. With CUDA it is left alone so
`pytest -m gpu tests/kernels` exercises the compiled kernels.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path

import torch

if not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"

_KERNEL_MODULE = "deconstruct.kernels.flash_attention.triton_kernel"


def _ensure_kernels_importable() -> None:
    """Import deconstruct.kernels; if the package is not installed with it, load it from kernels/."""
    try:
        importlib.import_module("deconstruct.kernels")
        return
    except ImportError:
        pass
    root = Path(__file__).resolve().parents[2] / "kernels"
    spec = importlib.util.spec_from_file_location(
        "deconstruct.kernels", root / "__init__.py", submodule_search_locations=[str(root)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["deconstruct.kernels"] = module
    spec.loader.exec_module(module)


_ensure_kernels_importable()

# If something imported the kernels before TRITON_INTERPRET was set, rebuild them in the right mode.
if _KERNEL_MODULE in sys.modules:
    importlib.reload(sys.modules[_KERNEL_MODULE])
