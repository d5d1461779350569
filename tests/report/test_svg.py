"""The report's own SVG charts: round ticks, and one mark per data point."""

from __future__ import annotations

from deconstruct.report._svg import (
    EMPTY,
    SEQUENTIAL,
    HeatRow,
    Point,
    Series,
    Whisker,
    bar_chart,
    effect_chart,
    heatmap,
    line_chart,
    nice_ticks,
    ramp,
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


def test_heatmap_colours_each_cell_on_a_shared_scale_and_greys_missing_ones():
    assert ramp(0.0) == SEQUENTIAL[0] and ramp(1.0) == SEQUENTIAL[-1] and ramp(0.5) == SEQUENTIAL[2]
    assert ramp(-3) == SEQUENTIAL[0] and ramp(7) == SEQUENTIAL[-1]
    rows = [HeatRow("layer 1 · mlp", [None, None], missing="no map"), HeatRow("layer 2", [0.0, 2.0], "mean 1")]
    svg = heatmap(rows, title="a<b", columns=["h0", "h1"], value_label="entropy", lo=0.0, hi=2.0, ends=("lo", "hi"))
    assert svg.startswith("<svg") and "a&lt;b" in svg and "a<b" not in svg
    assert svg.count(f'fill="{EMPTY}"') == 2 and svg.count("no map</title>") == 2
    assert f'fill="{SEQUENTIAL[0]}" stroke' in svg and f'fill="{SEQUENTIAL[-1]}" stroke' in svg
    assert "layer 2, h1: entropy 2.0000</title>" in svg and ">mean 1</text>" in svg
    assert svg.count("<rect") == 4 + 40  # the cells and the legend's colour ramp
