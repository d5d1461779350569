"""Layout presets from Xue et al. 2025 ("Deconstructing Attention", §layouts), scaled to any depth.

The paper uses 24 layers and lists the 1-indexed layers that KEEP standard attention; every other layer
gets the relaxed mixer. For depth L we keep the same shape (h = L // 2, q = max(1, L // 4)):

| preset    | standard layers (1-indexed)   | at L = 24           |
|-----------|-------------------------------|---------------------|
| uniform   | none                          | {}                  |
| hybrid    | even layers (alias: even)     | {2, 4, …, 24}       |
| odd       | odd layers                    | {1, 3, …, 23}       |
| top       | 1 … h                         | {1–12}              |
| bottom    | h+1 … L                       | {13–24}             |
| middle    | 1 … q and L−q+1 … L           | {1–6, 19–24}        |
| quarter   | every 4th layer (L if L < 4)  | {4, 8, …, 24}       |
| first     | 1                             | {1}                 |
| last      | L                             | {24}                |
| bilateral | 1 and L                       | {1, 24}             |
"""

from __future__ import annotations


def _quarter(n: int) -> set[int]:
    return {i for i in range(1, n + 1) if i % 4 == 0} or {n}


PRESETS = {
    "uniform": lambda n: set(),
    "hybrid": lambda n: {i for i in range(1, n + 1) if i % 2 == 0},
    "even": lambda n: {i for i in range(1, n + 1) if i % 2 == 0},
    "odd": lambda n: {i for i in range(1, n + 1) if i % 2 == 1},
    "top": lambda n: set(range(1, n // 2 + 1)),
    "bottom": lambda n: set(range(n // 2 + 1, n + 1)),
    "middle": lambda n: set(range(1, max(1, n // 4) + 1)) | set(range(n - max(1, n // 4) + 1, n + 1)),
    "quarter": _quarter,
    "first": lambda n: {1},
    "last": lambda n: {n},
    "bilateral": lambda n: {1, n},
}


def standard_layers(preset: str, n_layers: int) -> set[int]:
    """1-indexed layers that keep standard attention under ``preset`` at depth ``n_layers``."""
    return PRESETS[preset](n_layers)
