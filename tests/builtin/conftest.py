"""Makes ``import _mixer_helpers`` work in this folder's test modules: ``--import-mode=importlib`` does not put
test folders on ``sys.path``, so this conftest (loaded before the modules are collected) does."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)
