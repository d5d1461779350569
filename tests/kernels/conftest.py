"""Test setup for deconstruct.kernels.

Without CUDA, Triton kernels run on the CPU through Triton's interpreter. The interpreter is
chosen when a kernel is *decorated* (@triton.jit reads TRITON_INTERPRET), so the variable is set
here, before any test module imports the kernel code. With CUDA it is left alone so
`pytest -m gpu tests/kernels` exercises the compiled kernels.
"""

from __future__ import annotations

import importlib
import os
import sys

import torch

if not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"

_KERNEL_MODULE = "deconstruct.kernels.flash_attention.triton_kernel"


# If something imported the kernels before TRITON_INTERPRET was set, rebuild them in the right mode.
if _KERNEL_MODULE in sys.modules:
    importlib.reload(sys.modules[_KERNEL_MODULE])
