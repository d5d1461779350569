"""Reports: which principle matters, by how much, with what uncertainty — read from the store alone.

``build_report(names, storage, by=, baseline=, metric=)`` reads the ``dc_`` tables (and Optuna's, for
importances) and returns a :class:`Report`; ``render(report, fmt)`` turns it into ``table`` (rich renderables
that fit the console), ``csv``, ``json``, ``markdown`` or ``html`` (one self-contained file with inline SVG).

The map, in reading order:

- ``_load``: the store → :class:`StudyData` (runs, trials, curves, diagnostics of one study);
- ``_model``: the data model (:class:`Report`, :class:`StudyReport`, :class:`Configuration`, :class:`Effect`…);
- ``_configs``: configurations, their statistics over seeds and their attention diagnostics;
- ``_effects``: the effect of a searched axis against its baseline; ``_registry``: which mixers are
  token-wise and which value is standard, from the plugin registry and the resolved spec;
- ``_importances``: Optuna's parameter importances; ``_analysis``: one study, all of the above;
- ``_stats``: Student-t and bootstrap intervals;
- ``_tables``: the one table layer (columns, rounding, notes) every format draws on;
- ``_terminal``, ``_markdown``, ``_data`` (JSON, CSV), ``_html`` with ``_svg``: the formats.

Attention diagnostics (per layer: entropy, sink, local_0, head diversity, mean over seeds and heads) appear in
every format but CSV: the CSV stays one row per configuration (or per effect with ``--by``), and indicators per
layer would make its columns depend on the model's depth; the JSON carries them all, per layer and per head.
"""

from __future__ import annotations

from typing import Any

from deconstruct.report._analysis import analyse, build_report
from deconstruct.report._load import StudyData, load_studies
from deconstruct.report._model import (
    AxisEffects,
    Configuration,
    Diagnostics,
    Effect,
    Importances,
    LayerDiagnostics,
    Report,
    StudyReport,
    fmt_value,
)
from deconstruct.report._stats import (
    BOOTSTRAP_RESAMPLES,
    BOOTSTRAP_SEED,
    Interval,
    mean_ci,
    paired_bootstrap_ci,
    t_quantile,
    unpaired_bootstrap_ci,
)
from deconstruct.report._tables import Column, Table

FORMATS = ("table", "csv", "json", "markdown", "html")


def render(report: Report, fmt: str) -> Any:
    """``table`` → a list of rich renderables; every other format → text."""
    if fmt == "table":
        from deconstruct.report._terminal import rich_renderables

        return rich_renderables(report)
    if fmt == "csv":
        from deconstruct.report._data import to_csv

        return to_csv(report)
    if fmt == "json":
        from deconstruct.report._data import to_json

        return to_json(report)
    if fmt == "markdown":
        from deconstruct.report._markdown import to_markdown

        return to_markdown(report)
    if fmt == "html":
        from deconstruct.report._html import to_html

        return to_html(report)
    raise ValueError(f"unknown report format {fmt!r}; one of {', '.join(FORMATS)}")


def to_data(report: Report) -> dict[str, Any]:
    """The report as plain data (the JSON format)."""
    from deconstruct.report._data import to_data as _to_data

    return _to_data(report)


__all__ = [
    "BOOTSTRAP_RESAMPLES",
    "BOOTSTRAP_SEED",
    "FORMATS",
    "AxisEffects",
    "Column",
    "Configuration",
    "Diagnostics",
    "Effect",
    "Importances",
    "Interval",
    "LayerDiagnostics",
    "Report",
    "StudyData",
    "StudyReport",
    "Table",
    "analyse",
    "build_report",
    "fmt_value",
    "load_studies",
    "mean_ci",
    "paired_bootstrap_ci",
    "render",
    "t_quantile",
    "to_data",
    "unpaired_bootstrap_ci",
]
