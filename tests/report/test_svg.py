"""The report's own SVG charts: round ticks, and one mark per data point."""

from __future__ import annotations

from deconstruct.report._svg import (
    Point,
    Series,
    Whisker,
    bar_chart,
    effect_chart,
    line_chart,
    nice_ticks,
    scatter_chart,
)


def test_ticks_are_round_and_cover_the_range():
    assert nice_ticks(5.38, 5.5) == [5.4, 5.425, 5.45, 5.475, 5.5]
    assert nice_ticks(-0.03, 0.02) == [-0.03, -0.02, -0.01, 0.0, 0.01, 0.02]
    assert nice_ticks(1, 3, integer=True) == [1.0, 2.0, 3.0]  # steps: no 1.5


def test_charts_draw_every_point_and_escape_labels():
    svg = line_chart([Series("a<b", "#000", [(1, 5.0), (2, 4.0), (3, 3.5)])], title="t", xlabel="step", ylabel="loss")
    assert svg.startswith("<svg") and svg.count("<circle") == 3 and "a&lt;b" in svg and "a<b" not in svg
    svg = effect_chart([Whisker("mlp", -0.1, -0.2, 0.05), Whisker("x", 0.2, None, None)], title="e", xlabel="Δ",
                       reference="attention (baseline)")
    assert svg.count("<circle") == 3  # two estimates and the baseline marker
    svg = scatter_chart([Point(1e4, 5.0, "a", "#111", True), Point(2e4, 4.9, "b", "#222", True),
                         Point(3e4, 5.2, "c", "#333")], title="p", xlabel="params", ylabel="loss")
    assert svg.count("<circle") == 3 and svg.count("<polyline") == 1  # the front joins the two on it
    svg = bar_chart([("mixer.kind", 0.7), ("layout", 0.3)], title="i", xlabel="importance")
    assert svg.count("<rect") == 2
