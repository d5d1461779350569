"""The HTML report: one self-contained file (inline CSS and SVG, no script, no fonts, no network).

Per study: the configuration table, the effect of each axis (chart + table), learning curves (mean over
seeds, from ``dc_metric``), attention diagnostics (an entropy heatmap per configuration, layers × heads, from
``dc_diagnostic``, and the per-layer table), the Pareto front of multi-objective studies and the parameter
importances.
Several studies: a side-by-side table first, then one section per study.
"""

from __future__ import annotations

import json
import math
from html import escape

from deconstruct.metrics import show
from deconstruct.report._model import Configuration, Report, StudyReport, fmt_value, short_axis
from deconstruct.report._svg import (
    HeatRow,
    Point,
    Series,
    Whisker,
    bar_chart,
    color,
    effect_chart,
    heatmap,
    line_chart,
    scatter_chart,
)
from deconstruct.report._tables import StudyTables, Table, comparison_table, study_tables

CSS = """
:root { color-scheme: light; }
body { font: 14px/1.45 system-ui, -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', sans-serif; color: #222;
       margin: 0; background: #fafafa; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 60px; background: #fff; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 20px; margin: 36px 0 6px; padding-top: 10px; border-top: 2px solid #4e79a7; }
h3 { font-size: 16px; margin: 26px 0 8px; }
p.meta, p.note, figcaption { color: #666; font-size: 12.5px; margin: 4px 0 10px; }
table { border-collapse: collapse; margin: 6px 0 8px; font-size: 13px; font-variant-numeric: tabular-nums; }
th, td { padding: 4px 10px; border-bottom: 1px solid #e4e4e4; text-align: left; vertical-align: top; }
th { background: #f1f4f8; font-weight: 600; white-space: nowrap; }
td.num { text-align: right; white-space: nowrap; }
tr.best td { background: #eef6ee; }
figure.plot { margin: 8px 0 14px; padding: 8px; border: 1px solid #e6e6e6; border-radius: 6px; display: inline-block;
              background: #fff; }
figure.plot svg { display: block; }
div.heatmaps figure.plot { margin-right: 10px; vertical-align: top; width: min-content; }
ul.notes li { color: #7a5b00; }
details { margin: 6px 0; } summary { cursor: pointer; color: #4e79a7; }
pre { background: #f6f8fa; padding: 10px; overflow-x: auto; font-size: 12px; }
.verdict-better { color: #2e7d32; font-weight: 600; } .verdict-worse { color: #c62828; font-weight: 600; }
"""


def _table(table: Table, best: int | None = None) -> str:
    """``table`` as HTML: numeric cells right-aligned, a ``better``/``worse`` verdict coloured, row ``best``
    highlighted."""
    head, numeric = table.head(), table.numeric()
    verdict_col = head.index("verdict") if "verdict" in head else None
    out = ["<table><thead><tr>" + "".join(f"<th>{escape(h)}</th>" for h in head) + "</tr></thead><tbody>"]
    for i, row in enumerate(table.cells()):
        cls = ' class="best"' if best is not None and i == best else ""
        cells = []
        for j, cell in enumerate(row):
            attrs = ' class="num"' if j in numeric else ""
            if j == verdict_col and cell.split(" ")[0] in ("better", "worse"):
                attrs = f' class="verdict-{cell.split(" ")[0]}"'
            cells.append(f"<td{attrs}>{escape(cell)}</td>")
        out.append(f"<tr{cls}>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _notes(lines: list[str]) -> list[str]:
    return [f'<p class="note">{escape(n)}</p>' for n in lines]


def _figure(svg: str, kind: str, caption: str) -> str:
    return f'<figure class="plot" data-plot="{kind}">{svg}<figcaption>{escape(caption)}</figcaption></figure>'


def uniform_entropy(seq_len: int) -> float:
    """Mean entropy (nats) of causal attention spread evenly over each query's prefix: (1/T) Σ_i log i =
    log(T!)/T, the most diffuse a causal map can be; the heatmaps' colour scale runs from 0 (one key) to it."""
    return math.lgamma(seq_len + 1) / seq_len


def _seq_len(c: Configuration) -> int | None:
    t = (c.config or {}).get("task") or {}
    n = t.get("seq_len") if isinstance(t, dict) else None
    return n if isinstance(n, int) and n > 1 else None


def _entropy_heatmap(c: Configuration, lo: float, hi: float, high_end: str) -> str:
    """Layers × heads of one configuration, colour = entropy (mean over seeds); layers without a map in grey."""
    d = c.diagnostics
    assert d is not None
    heads = d.heads
    rows = []
    for x in d.layers:
        name = f"layer {x.layer}" + (f" · {x.mixer}" if x.mixer else "")
        values = list(x.per_head.get("entropy", []))
        values += [None] * (heads - len(values))
        tips = [f"{name}, head {h}: entropy {v:.4f} nats (mean over {x.n} seed{'s' if x.n != 1 else ''})"
                if v is not None else f"{name}, head {h}: no value" for h, v in enumerate(values)]
        note = f"mean {show('entropy', x.mean.get('entropy'), 3)}"
        if x.mean.get("head_diversity") is not None:
            note += f" · div {show('head_diversity', x.mean['head_diversity'], 3)}"
        rows.append((x.layer, HeatRow(name, values, note, tips=tips)))
    for i, mixer, reason in d.missing:
        name = f"layer {i}" + (f" · {mixer}" if mixer else "")
        rows.append((i, HeatRow(name, [None] * heads, reason.split(" (")[0], missing=reason)))
    rows.sort(key=lambda r: r[0])
    return heatmap([r for _, r in rows], title=c.label, columns=[f"h{h}" for h in range(heads)],
                   value_label="entropy (nats)", lo=lo, hi=hi, ends=("focused", high_end))


def _diagnostics_section(s: StudyReport, t: StudyTables) -> list[str]:
    out = ["<h3>Attention diagnostics</h3>"]
    diag = t.diagnostics
    if diag.rows:
        mapped = [c for c in s.configurations if c.diagnostics is not None and c.diagnostics.layers]
        values = [v for c in mapped for x in c.diagnostics.layers  # type: ignore[union-attr]
                  for v in x.per_head.get("entropy", []) if v is not None]
        # one absolute scale for the study: 0 (each query on one key) to causal-uniform attention at the
        # longest sequence length (the maximum), widened if a value lies beyond (a non-causal map)
        lengths = [n for n in (_seq_len(c) for c in mapped) if n is not None]
        top = uniform_entropy(max(lengths)) if lengths else None
        lo = min([0.0] + values)
        hi = max([top or 0.0] + values)
        hi = hi if hi > lo else lo + 1.0
        to_uniform = top is not None and hi == top
        out.append('<div class="heatmaps">')
        for c in mapped:
            n = c.diagnostics.n_runs  # type: ignore[union-attr]
            out.append(_figure(_entropy_heatmap(c, lo, hi, "uniform" if to_uniform else "diffuse"), "heatmap",
                               f"{c.label}: entropy per layer and head, mean over {n} seed{'s' if n != 1 else ''}; "
                               "hover a cell for its value."))
        out.append("</div>")
        scale = (f"from 0 (each query attends to one key) to {show('entropy', hi, 3)} nats, the entropy of "
                 f"attention spread evenly over the causal prefix at sequence length {max(lengths)}" if to_uniform
                 else f"from {show('entropy', lo, 3)} to {show('entropy', hi, 3)} nats (the largest value)")
        out.append(f'<p class="note">Entropy per layer and head. The heatmaps share one colour scale, {escape(scale)}; '
                   "grey: a layer without an attention map. Right of each row: the layer's mean entropy and head "
                   "diversity.</p>")
        out += [_table(diag), *_notes(diag.notes)]
    return out + _notes(t.diagnostic_notes)


def _study_section(s: StudyReport, index: int, several: bool) -> str:
    out = []
    sid = f"study-{index}"
    if several:
        out.append(f'<h2 id="{sid}">{escape(s.name)}</h2>')
    t = study_tables(s)
    out.append(f'<p class="meta">{escape(t.summary)}</p>')
    colors = {c.config_hash: color(i) for i, c in enumerate(s.configurations)}

    # configurations
    out.append("<h3>Configurations</h3>")
    best = 0 if s.configurations and s.configurations[0].rank == 1 else None
    out += [_table(t.configurations, best=best), *_notes(t.configurations.notes)]

    # effects
    for ae, table in zip(s.effects, t.effects, strict=True):
        out.append(f"<h3>{escape(table.title)}</h3>")
        whiskers = [
            Whisker(fmt_value(e.value), e.interval.estimate, e.interval.low, e.interval.high, color(i + 1),
                    f"{e.method}, {e.verdict}")
            for i, e in enumerate(ae.effects) if e.interval.estimate is not None
        ]
        if whiskers:
            better = "lower" if s.direction == "minimize" else "higher"
            svg = effect_chart(whiskers, title=f"effect of {ae.axis}", reference=f"{fmt_value(ae.baseline)} (baseline)",
                               xlabel=f"Δ {s.objective} vs {fmt_value(ae.baseline)} ({better} is better)")
            out.append(_figure(svg, "effect", f"Mean difference and 95% bootstrap interval per value of {ae.axis}; "
                                              "the dashed line is the baseline."))
        out += [_table(table), *_notes(table.notes)]
    for table in t.interactions:
        out += [f"<h3>{escape(table.title)}</h3>", _table(table), *_notes(table.notes)]

    # learning curves
    out.append(f"<h3>Learning curves ({escape(s.curve_metric)}, mean over seeds)</h3>")
    series = [Series(c.label if c.used else f"{c.label} (not completed)", colors[c.config_hash],
                     [(st, v) for st, v, _ in c.curve], dashed=not c.used)
              for c in s.configurations if c.curve]
    if series:
        svg = line_chart(series, title=f"{s.curve_metric} vs step", xlabel="step", ylabel=s.curve_metric)
        out.append(_figure(svg, "curves", f"{s.curve_metric} at each evaluation, averaged over the seeds of each "
                                          "configuration (completed runs; dashed: a configuration none of whose runs completed)."))
    else:
        out.append('<p class="note">No learning curves were recorded for this study.</p>')

    out += _diagnostics_section(s, t)

    # Pareto front
    if s.pareto is not None and t.pareto is not None:
        out.append(f"<h3>Pareto front ({escape(' vs '.join(s.objectives[:2]))})</h3>")
        x_name, y_name = s.objectives[1], s.objectives[0]
        points = [Point(c.other[x_name], c.other[y_name], c.label, colors[c.config_hash], c.pareto)  # type: ignore[arg-type]
                  for c in s.configurations
                  if c.other.get(y_name) is not None and c.other.get(x_name) is not None]
        svg = scatter_chart(points, title="Pareto front", xlabel=x_name, ylabel=y_name)
        out.append(_figure(svg, "pareto", "Each configuration at its mean over seeds; outlined points (★) are "
                                          "not dominated on " + " and ".join(
                                              f"{o} ({d})" for o, d in zip(s.objectives, s.directions, strict=True)) + "."))
        out.append(_table(t.pareto))

    # importances
    out.append("<h3>Parameter importances</h3>")
    imp, imp_table = s.importances, t.importances
    if imp_table is not None and imp is not None and imp.values:
        items = [(short_axis(k, list(imp.values)), v) for k, v in imp.values.items()]
        out.append(_figure(bar_chart(items, title="parameter importances", xlabel="importance (normalised)"),
                           "importances", f"{imp.evaluator}; {imp.note}."))
        out.append(_table(imp_table))
    elif imp is not None:
        out.append(f'<p class="note">{escape(imp.note)}.</p>')

    if s.notes:
        out.append("<h3>Notes</h3><ul class=\"notes\">" + "".join(f"<li>{escape(n)}</li>" for n in s.notes) + "</ul>")

    out.append(f"<h3>{escape(t.code.title)}</h3>")
    out.append(_table(t.code))
    out += _notes(t.code.notes)

    # resolved configurations, for the record
    out.append("<details><summary>Resolved configurations</summary>")
    for c in s.configurations:
        out.append(f"<p><b>{escape(c.label)}</b> <code>{escape(c.config_hash)}</code> — seeds "
                   f"{escape(', '.join(str(x) for x in c.seeds) or 'none')}; values "
                   f"{escape(', '.join(show(s.objective, v) for v in c.values(s.objective)) or 'none')}</p>")
        out.append(f"<pre>{escape(json.dumps(c.config, indent=1, sort_keys=True))}</pre>")
    out.append("</details>")
    return "\n".join(out)


def to_html(report: Report) -> str:
    names = ", ".join(s.name for s in report.studies)
    several = len(report.studies) > 1
    body = [f"<h1>deconstruct report: {escape(names)}</h1>"]
    versions = sorted({f"deconstruct {s.deconstruct_version}, torch {s.torch_version}" for s in report.studies
                       if s.deconstruct_version})
    if versions:
        body.append(f'<p class="meta">Studies recorded with {escape("; ".join(versions))}.</p>')
    if several:
        body.append("<h2>Side by side</h2>")
        side = comparison_table(report)
        body += [_table(side), *_notes(side.notes)]
    for i, s in enumerate(report.studies):
        body.append(_study_section(s, i, several))
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>deconstruct report: {escape(names)}</title><style>{CSS}</style></head>"
        "<body><main>\n" + "\n".join(body) + "\n</main></body></html>\n"
    )
