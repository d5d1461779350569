"""Where the kernels run: one reading of TRITON_INTERPRET for the whole package."""

from __future__ import annotations

import os


def interpreting() -> bool:
    """True when TRITON_INTERPRET asks Triton to run kernels on the CPU through its interpreter."""
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "yes", "on")
