"""A report as text: rich tables, CSV, JSON and Markdown (HTML lives in :mod:`._html`).

All formats draw on the same rows (:func:`config_rows`, :func:`effect_rows`), so a number in the table is the
number in the CSV and the JSON. Machine formats carry full precision; tables round for reading.

Attention diagnostics (:func:`diagnostic_table`: one row per configuration × layer) are in the table, Markdown,
HTML and JSON formats, not in the CSV: a CSV is one table of configurations (or effects), and per-layer
indicators would give it a number of columns that depends on the model's depth. The JSON has every indicator
per layer (``mean``) and per head (``per_head``).
"""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any

from deconstruct.report._analysis import (
    AxisEffects,
    Configuration,
    Diagnostics,
    Effect,
    Report,
    StudyReport,
    fmt_value,
    point_key,
)

CI_LABEL = "95% CI"


# ------------------------------------------------------------------------------------------ numbers


def fmt_num(x: float | None, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    if x == 0 or 1e-3 <= abs(x) < 1e4:
        return f"{x:.{digits}f}"
    return f"{x:.{digits}g}"


def fmt_objective(name: str, x: float | None) -> str:
    """An objective's value: counts (params, FLOPs, tokens) as whole numbers, the rest like a loss."""
    if x is not None and name in ("params", "flops_per_token", "flops", "tokens", "peak_memory_bytes"):
        return f"{round(x):,}"
    return fmt_num(x)


def fmt_signed(x: float | None, digits: int = 4) -> str:
    s = fmt_num(x, digits)
    return s if x is None or s.startswith("-") or s == "—" else "+" + s


def fmt_human(x: float | None) -> str:
    if x is None:
        return "—"
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= div:
            return f"{x / div:.2f}{unit}"
    return f"{x:.0f}" if float(x).is_integer() else f"{x:.3g}"


def fmt_mean_ci(c: Configuration) -> str:
    iv = c.objective
    if iv.estimate is None:
        return "—"
    if not iv.has_interval:
        return f"{fmt_num(iv.estimate)} (n=1, no CI)"
    return f"{fmt_num(iv.estimate)} ± {fmt_num(iv.high - iv.estimate)}"  # type: ignore[operator]


def fmt_runs(c: Configuration) -> str:
    parts = [f"{c.status[s]} {s}" for s in ("completed", "pruned", "failed", "running") if c.status.get(s)]
    text = ", ".join(parts) or "none"
    if c.failures:
        text += " (" + "; ".join(f"{reason}" + (f" ×{n}" if n > 1 else "") for reason, n in c.failures) + ")"
    return text


def fmt_interval(e: Effect) -> str:
    iv = e.interval
    if not iv.has_interval:
        return "—"
    return f"[{fmt_signed(iv.low)}, {fmt_signed(iv.high)}]"


def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def fmt_backing(e: Effect) -> str:
    if e.paired:
        return f"{plural(e.n_pairs, 'seed pair')} over {plural(e.n_configs, 'config pair')}"
    return (f"{e.n_runs} vs {plural(e.n_baseline_runs, 'run')} "
            f"({e.n_configs} vs {plural(e.n_baseline_configs, 'config')})")


def fmt_relative(e: Effect) -> str:
    r = e.relative
    return "—" if r is None else f"{r * 100:+.2f}%"


# ------------------------------------------------------------------------------------------ rows


def config_rows(study: StudyReport) -> list[dict[str, Any]]:
    """One dict per configuration, full precision, in rank order (what CSV and JSON carry)."""
    rows = []
    axes = list(study.axes)
    for c in study.configurations:
        iv = c.objective
        row: dict[str, Any] = {
            "study": study.name,
            "rank": c.rank,
            "configuration": c.label,
            "config_hash": c.config_hash,
        }
        for axis in axes:
            vals = []
            for p in c.points:
                if axis in p and p[axis] not in vals:
                    vals.append(p[axis])
            row[axis] = "|".join(fmt_value(v) for v in vals)
        row.update({
            "objective": study.objective,
            "mean": iv.estimate,
            "ci_low": iv.low,
            "ci_high": iv.high,
            "ci_method": iv.method,
            "n": iv.n,
            "std": iv.std,
            "seeds": " ".join(str(s) for s in c.seeds),
        })
        for name in study.objectives[1:]:
            row[f"mean_{name}"] = c.other.get(name)
        row.update({
            "pareto": c.pareto if study.pareto is not None else None,
            "params": c.params,
            "flops_per_token": c.flops_per_token,
            "tokens_per_second": c.tokens_per_second,
            "wall_seconds": c.wall_seconds,
            "wall_seconds_total": c.wall_seconds_total,
            "completed": c.status.get("completed", 0),
            "pruned": c.status.get("pruned", 0),
            "failed": c.status.get("failed", 0),
            "running": c.status.get("running", 0),
            "failure_reasons": "; ".join(f"{r} ({n})" for r, n in c.failures),
        })
        if study.pareto is None:
            row.pop("pareto")
        rows.append(row)
    return rows


def effect_rows(study: StudyReport) -> list[dict[str, Any]]:
    rows = []
    for ae in study.effects:
        for e in ae.effects:
            iv = e.interval
            rows.append({
                "study": study.name,
                "axis": e.axis,
                "value": fmt_value(e.value),
                "baseline": fmt_value(e.baseline),
                "objective": study.objective,
                "diff": iv.estimate,
                "ci_low": iv.low,
                "ci_high": iv.high,
                "relative": e.relative,
                "method": iv.method,
                "paired": e.paired,
                "n_pairs": e.n_pairs,
                "n_configs": e.n_configs,
                "n_baseline_configs": e.n_baseline_configs,
                "n_runs": e.n_runs,
                "n_baseline_runs": e.n_baseline_runs,
                "baseline_mean": e.baseline_mean,
                "verdict": e.verdict,
            })
    return rows


def comparison_rows(report: Report) -> list[dict[str, Any]]:
    """Configurations matched across studies by a shared search point (the same searched values): one row
    per match, holding each study's configuration or None."""
    rows: list[dict[str, Any]] = []
    keys: list[set[Any]] = []
    for s in report.studies:
        for c in s.configurations:
            mine: set[Any] = {point_key(p) for p in c.points} or {("config", c.config_hash)}
            i = next((i for i, k in enumerate(keys) if k & mine and rows[i][s.name] is None), None)
            if i is None:
                rows.append({"configuration": c.label, **{t.name: None for t in report.studies}})
                keys.append(set())
                i = len(rows) - 1
            rows[i][s.name] = c
            keys[i] |= mine
    return rows


def diagnostic_data(d: Diagnostics | None) -> dict[str, Any] | None:
    if d is None:
        return None
    return {
        "n_runs": d.n_runs,
        "layers": [{"layer": x.layer, "mixer": x.mixer, "n": x.n, "heads": x.heads, "mean": x.mean,
                    "per_head": x.per_head} for x in d.layers],
        "missing": [{"layer": i, "mixer": m, "reason": r} for i, m, r in d.missing],
        "reason": d.reason,
    }


# ------------------------------------------------------------------------------------------ JSON / CSV


def _clean(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    return x


def to_data(report: Report) -> dict[str, Any]:
    """The report as plain data (what ``--format json`` prints)."""
    studies = []
    for s in report.studies:
        configs = []
        for row, c in zip(config_rows(s), s.configurations, strict=True):
            row = dict(row)
            row.pop("study")
            row["seeds"] = c.seeds
            row["values"] = c.values(s.objective)
            row["search_points"] = c.points
            row["failures"] = [{"reason": r, "count": n} for r, n in c.failures]
            row.pop("failure_reasons")
            row["status"] = {k: row.pop(k) for k in ("completed", "pruned", "failed", "running")}
            row["curve"] = {"metric": s.curve_metric, "points": [[st, v, n] for st, v, n in c.curve]}
            row["diagnostics"] = diagnostic_data(c.diagnostics)
            row["config"] = c.config
            configs.append(row)
        effects = [{k: v for k, v in r.items() if k != "study"} for r in effect_rows(s)]
        imp = s.importances
        studies.append({
            "name": s.name,
            "storage": s.storage,
            "objectives": s.objectives,
            "directions": s.directions,
            "objective": s.objective,  # what the tables report: --metric, else the first objective
            "direction": s.direction,
            "metric": s.metric,
            "axes": s.axes,
            "runs": {"total": sum(s.status.values()), **s.status},
            "trials": {"total": sum(s.trial_status.values()), **s.trial_status} if s.trial_status else None,
            "configurations": configs,
            "effects": effects,
            "baselines": {ae.axis: {"value": ae.baseline, "reason": ae.baseline_reason} for ae in s.effects},
            "importances": None if imp is None else {
                "evaluator": imp.evaluator, "n_trials": imp.n_trials, "values": imp.values, "note": imp.note},
            "pareto": None if s.pareto is None else {
                "objectives": s.objectives, "front": [c.config_hash for c in s.pareto]},
            "diagnostics": {"recorded": s.has_diagnostics, "aggregation": DIAG_NOTE, "notes": diagnostic_notes(s)},
            "notes": s.notes,
            "versions": {"deconstruct": s.deconstruct_version, "torch": s.torch_version},
        })
    data: dict[str, Any] = {"studies": studies}
    if report.by:
        data["by"] = report.by
    if len(report.studies) > 1:
        data["comparison"] = [
            {"configuration": r["configuration"],
             **{s.name: (None if r[s.name] is None else {
                 "mean": r[s.name].objective.estimate, "ci_low": r[s.name].objective.low,
                 "ci_high": r[s.name].objective.high, "n": r[s.name].objective.n}) for s in report.studies}}
            for r in comparison_rows(report)
        ]
    return _clean(data)


def to_json(report: Report) -> str:
    return json.dumps(to_data(report), indent=2, default=str) + "\n"


def to_csv(report: Report) -> str:
    """Configurations (one row each, a ``study`` column first); with ``--by``, the effect rows instead.
    Attention diagnostics are not in the CSV (see the module docstring): use ``--format json``."""
    rows = [r for s in report.studies for r in (effect_rows(s) if report.by else config_rows(s))]
    if not rows:
        return ""
    fields: list[str] = []
    for r in rows:
        fields += [k for k in r if k not in fields]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: ("" if v is None else repr(v) if isinstance(v, float) else v) for k, v in r.items()})
    return buf.getvalue()


# ------------------------------------------------------------------------------------------ tables


COST_COLUMNS = ("params", "flops_per_token", "tokens_per_second", "wall_seconds")


def _extra_objectives(s: StudyReport) -> list[str]:
    """Further objectives that need a column of their own (costs already have one)."""
    return [o for o in s.objectives[1:] if o not in COST_COLUMNS]


def config_table(s: StudyReport) -> tuple[list[str], list[list[str]]]:
    head = ["#", "configuration", f"{s.objective} ({CI_LABEL})", "n"]
    head += _extra_objectives(s)
    if s.pareto is not None:
        head.append("Pareto")
    head += ["params", "FLOPs/token", "tokens/s", "wall s/run", "runs"]
    rows = []
    for c in s.configurations:
        row = [str(c.rank or "—"), c.label, fmt_mean_ci(c), str(c.objective.n)]
        row += [fmt_objective(o, c.other.get(o)) for o in _extra_objectives(s)]
        if s.pareto is not None:
            row.append("★" if c.pareto else "")
        row += [fmt_human(c.params), fmt_human(c.flops_per_token), fmt_human(c.tokens_per_second),
                fmt_num(c.wall_seconds, 2), fmt_runs(c)]
        rows.append(row)
    return head, rows


def effect_table(s: StudyReport, ae: AxisEffects) -> tuple[list[str], list[list[str]]]:
    head = ["value", f"Δ {s.objective}", CI_LABEL, "relative", "method", "backed by", "verdict"]
    rows = [[fmt_value(e.value), fmt_signed(e.interval.estimate), fmt_interval(e), fmt_relative(e), e.method,
             fmt_backing(e), e.verdict] for e in ae.effects]
    return head, rows


def effect_title(s: StudyReport, ae: AxisEffects) -> str:
    better = "lower" if s.direction == "minimize" else "higher"
    return (f"Effect of {ae.axis} vs {fmt_value(ae.baseline)} ({ae.baseline_reason}); "
            f"Δ = value − baseline, {better} {s.objective} is better")


def importance_table(s: StudyReport) -> tuple[list[str], list[list[str]]] | None:
    imp = s.importances
    if imp is None or not imp.values:
        return None
    return ["parameter", "importance"], [[k, f"{v:.3f}"] for k, v in imp.values.items()]


def pareto_table(s: StudyReport) -> tuple[list[str], list[list[str]]] | None:
    if s.pareto is None:
        return None
    head = ["configuration"] + [f"{o} ({d})" for o, d in zip(s.objectives, s.directions, strict=True)]
    rows = [[c.label] + [fmt_objective(o, c.other.get(o)) for o in s.objectives] for c in s.pareto]
    return head, rows


#: (indicator, column heading) of the diagnostics table; the JSON has every indicator
DIAG_COLUMNS = (("entropy", "entropy (nats)"), ("sink", "sink"), ("local_0", "local_0"),
                ("head_diversity", "head diversity"))
DIAG_NOTE = ("Attention indicators of each layer on a few validation sequences after training, mean over seeds "
             "and heads (Xue et al. 2025): entropy of a query's attention row (nats; low = focused), sink = "
             "weight on position 1, local_0 = weight on the query's own position, head diversity = std across "
             "heads of the map (one value per layer, mean over seeds).")


def diagnostic_table(s: StudyReport) -> tuple[list[str], list[list[str]]]:
    """One row per configuration × layer with indicators, configurations in rank order."""
    head = ["configuration", "layer", "mixer", "n"] + [h for _, h in DIAG_COLUMNS]
    rows = []
    for c in s.configurations:
        for x in c.diagnostics.layers if c.diagnostics is not None else []:
            rows.append([c.label, str(x.layer), x.mixer or "—", str(x.n)]
                        + [fmt_num(x.mean.get(name)) for name, _ in DIAG_COLUMNS])
    return head, rows


def diagnostic_notes(s: StudyReport) -> list[str]:
    """Why configurations (or layers) have no diagnostics: one line per reason; one line in all when the study
    has none at all."""
    by_reason: dict[str, list[str]] = {}
    for c in s.configurations:  # whole configurations first, then single layers
        if c.diagnostics is not None and c.diagnostics.reason is not None:
            by_reason.setdefault(c.diagnostics.reason, []).append(c.label)
    for c in s.configurations:
        if c.diagnostics is not None and c.diagnostics.layers:
            for i, mixer, reason in c.diagnostics.missing:
                by_reason.setdefault(reason, []).append(f"layer {i}{f' ({mixer})' if mixer else ''} of {c.label}")
    if not s.has_diagnostics:
        if not s.configurations:
            return ["Attention diagnostics: none, this study has no runs yet."]
        why = " — ".join(f"{reason}: {'; '.join(names)}" for reason, names in by_reason.items())
        return [f"Attention diagnostics: none in this study ({why})."]
    return [f"Not shown, {reason}: {'; '.join(names)}." for reason, names in by_reason.items()]


def comparison_table(report: Report) -> tuple[list[str], list[list[str]]]:
    head = ["configuration"] + [f"{s.name}: {s.objective} ({CI_LABEL}), n" for s in report.studies]
    rows = []
    for r in comparison_rows(report):
        cells = [r["configuration"]]
        for s in report.studies:
            c = r[s.name]
            if c is None:
                cells.append("—")
            elif c.objective.estimate is None:
                cells.append(f"— ({fmt_runs(c)})")
            else:
                cells.append(f"{fmt_mean_ci(c)}, n={c.objective.n}")
        rows.append(cells)
    return head, rows


def summary_line(s: StudyReport) -> str:
    st = s.status
    runs = sum(st.values())
    parts = [f"{st[k]} {k}" for k in ("completed", "pruned", "failed", "running") if st.get(k)]
    objective = ", ".join(f"{o} ({d})" for o, d in zip(s.objectives, s.directions, strict=True))
    if s.metric is not None:
        objective += f" · reporting {s.metric} ({s.direction})"
    trials = ""
    if s.trial_status:
        ts = s.trial_status
        tparts = [f"{ts[k]} {k}" for k in ("completed", "pruned", "failed", "running") if ts.get(k)]
        trials = f"{plural(sum(ts.values()), 'trial')} ({', '.join(tparts)}) · "
    return (f"objective: {objective} · {trials}{plural(runs, 'run')} ({', '.join(parts) or 'none'}) in "
            f"{plural(len(s.configurations), 'configuration')} · storage {s.storage}")


CI_NOTE = ("mean ± half-width of the two-sided 95% Student-t interval over seeds (n = seeds with a completed "
           "run; n=1 has no interval). Effects: mean difference with a 95% percentile bootstrap interval "
           "(paired over runs that share every other searched value and the seed when such pairs exist, "
           "otherwise unpaired; fixed RNG seed).")


# ------------------------------------------------------------------------------------------ markdown


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def md_table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(_md_escape(h) for h in head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(_md_escape(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def to_markdown(report: Report) -> str:
    out = []
    names = ", ".join(s.name for s in report.studies)
    out.append(f"# deconstruct report: {names}\n")
    if len(report.studies) > 1:
        out.append("## Side by side\n")
        out.append(md_table(*comparison_table(report)) + "\n")
    for s in report.studies:
        level = "##" if len(report.studies) == 1 else "###"
        if len(report.studies) > 1:
            out.append(f"## {s.name}\n")
        out.append(summary_line(s) + "\n")
        out.append(f"{level} Configurations\n")
        out.append(md_table(*config_table(s)) + "\n")
        out.append(f"_{s.objective}: {CI_NOTE}_\n")
        for ae in s.effects:
            out.append(f"{level} {effect_title(s, ae)}\n")
            out.append(md_table(*effect_table(s, ae)) + "\n")
        out.append(f"{level} Attention diagnostics\n")
        head, rows = diagnostic_table(s)
        if rows:
            out.append(md_table(head, rows) + "\n")
            out.append(f"_{DIAG_NOTE}_\n")
        for n in diagnostic_notes(s):
            out.append(n + "\n")
        out.append(f"{level} Parameter importances\n")
        imp = s.importances
        table = importance_table(s)
        if table:
            out.append(md_table(*table) + "\n")
        if imp is not None:
            out.append(f"{imp.evaluator}: {imp.note}.\n" if imp.values else f"{imp.note}.\n")
        if s.pareto is not None:
            out.append(f"{level} Pareto front ({' vs '.join(s.objectives)})\n")
            out.append(md_table(*pareto_table(s)) + "\n")  # type: ignore[misc]
        if s.notes:
            out.append(f"{level} Notes\n")
            out.append("\n".join(f"- {n}" for n in s.notes) + "\n")
    return "\n".join(out)


def rich_renderables(report: Report) -> list[Any]:
    """Rich tables and lines for the terminal (``--format table``)."""
    from rich.table import Table
    from rich.text import Text

    def table(title: str, head: list[str], rows: list[list[str]], numeric: set[int] | frozenset[int] = frozenset()) -> Table:
        t = Table(title=title, title_justify="left", title_style="bold")
        for i, h in enumerate(head):
            t.add_column(h, justify="right" if i in numeric else "left", overflow="fold", no_wrap=i in numeric)
        for r in rows:
            t.add_row(*r)
        return t

    out: list[Any] = []
    if len(report.studies) > 1:
        out.append(table("Side by side", *comparison_table(report)))
    for s in report.studies:
        out.append(Text(f"\n{s.name}", style="bold underline"))
        out.append(Text(summary_line(s), style="dim"))
        head, rows = config_table(s)
        out.append(table("Configurations", head, rows, numeric={0, 2, 3} | set(range(4, len(head) - 1))))
        out.append(Text(CI_NOTE, style="dim"))
        for ae in s.effects:
            out.append(table(effect_title(s, ae), *effect_table(s, ae), numeric={1, 2, 3}))
        head, rows = diagnostic_table(s)
        if rows:
            t = table("Attention diagnostics (mean over seeds and heads)", head, [], numeric={1} | set(range(3, len(head))))
            for i, r in enumerate(rows):
                last = i + 1 == len(rows) or rows[i + 1][0] != r[0]
                t.add_row(*([r[0] if i == 0 or rows[i - 1][0] != r[0] else ""] + r[1:]), end_section=last)
            out.append(t)
            out.append(Text(DIAG_NOTE, style="dim"))
        for n in diagnostic_notes(s):
            out.append(Text(n, style="dim"))
        imp = s.importances
        imp_rows = importance_table(s)
        if imp is not None and imp_rows:  # importance_table returns rows only when imp is set
            out.append(table(f"Parameter importances — {imp.evaluator}", *imp_rows, numeric={1}))
            out.append(Text(imp.note, style="dim"))
        elif imp is not None:
            out.append(Text(f"Parameter importances: {imp.note}.", style="dim"))
        pt = pareto_table(s)
        if pt:
            out.append(table(f"Pareto front ({' vs '.join(s.objectives)})", *pt))
        for n in s.notes:
            out.append(Text(f"note: {n}", style="yellow"))
    return out
