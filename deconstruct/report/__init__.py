"""Reports: which principle matters, by how much, with what uncertainty — read from the store alone.

``build_report(names, storage, by=, baseline=)`` reads the ``dc_`` tables (and Optuna's, for importances)
and returns a :class:`Report`; ``render(report, fmt)`` turns it into ``table`` (rich renderables),
``csv``, ``json``, ``markdown`` or ``html`` (one self-contained file with inline SVG plots).

Attention diagnostics (per layer: entropy, sink, local_0, head diversity, mean over seeds and heads) appear in
every format but CSV: the CSV stays one row per configuration (or per effect with ``--by``), and indicators per
layer would make its columns depend on the model's depth; the JSON carries them all, per layer and per head.
"""

from __future__ import annotations

from typing import Any

from deconstruct.report._analysis import (
    STANDARD_VALUES,
    AxisEffects,
    Configuration,
    Diagnostics,
    Effect,
    Importances,
    LayerDiagnostics,
    Report,
    StudyReport,
    analyse,
    build_report,
    fmt_value,
)
from deconstruct.report._load import DEFAULT_STORAGE, StudyData, StudyNotFound, load_studies
from deconstruct.report._stats import (
    BOOTSTRAP_RESAMPLES,
    BOOTSTRAP_SEED,
    Interval,
    mean_ci,
    paired_bootstrap_ci,
    t_quantile,
    unpaired_bootstrap_ci,
)

FORMATS = ("table", "csv", "json", "markdown", "html")


def render(report: Report, fmt: str) -> Any:
    """``table`` → a list of rich renderables; every other format → text."""
    from deconstruct.report import _html, _render

    if fmt == "table":
        return _render.rich_renderables(report)
    if fmt == "csv":
        return _render.to_csv(report)
    if fmt == "json":
        return _render.to_json(report)
    if fmt == "markdown":
        return _render.to_markdown(report)
    if fmt == "html":
        return _html.to_html(report)
    raise ValueError(f"unknown report format {fmt!r}; one of {', '.join(FORMATS)}")


def to_data(report: Report) -> dict[str, Any]:
    """The report as plain data (the JSON format)."""
    from deconstruct.report._render import to_data as _to_data

    return _to_data(report)


__all__ = [
    "BOOTSTRAP_RESAMPLES",
    "BOOTSTRAP_SEED",
    "DEFAULT_STORAGE",
    "FORMATS",
    "STANDARD_VALUES",
    "AxisEffects",
    "Configuration",
    "Diagnostics",
    "Effect",
    "Importances",
    "Interval",
    "LayerDiagnostics",
    "Report",
    "StudyData",
    "StudyNotFound",
    "StudyReport",
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
