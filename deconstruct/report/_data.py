"""The machine formats: JSON (everything, as plain data) and CSV (one table). Full precision, never rounded.

Both take their columns from :mod:`._tables` (:meth:`Table.records`), so a number in the CSV is the number in
the JSON and, rounded, the number in the table. Attention diagnostics are in the JSON (per layer ``mean`` and
per head ``per_head``), not in the CSV: a CSV is one table of configurations (or effects, with ``--by``), and
per-layer indicators would give it a number of columns that depends on the model's depth.
"""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any

from deconstruct.report._model import Diagnostics, Report
from deconstruct.report._tables import (
    DIAG_NOTE,
    _code_of,
    comparison_table,
    configuration_table,
    diagnostic_notes,
    effect_records,
    interaction_table,
)


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
        for row, c in zip(configuration_table(s).records(), s.configurations, strict=True):
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
            row["code"] = [{"deconstruct": d, "plugins": p} for d, p in _code_of(c)]
            configs.append(row)
        effects = [{k: v for k, v in r.items() if k != "study"} for r in effect_records(s)]
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
            "interactions": [{k: v for k, v in r.items() if k != "study"}
                             for i in s.interactions for r in interaction_table(s, i).records()],
            "matched": s.matched,
            "baselines": {ae.axis: {"value": ae.baseline, "reason": ae.baseline_reason} for ae in s.effects},
            "importances": None if imp is None else {
                "evaluator": imp.evaluator, "n_trials": imp.n_trials, "values": imp.values, "note": imp.note,
                "shown": imp.shown},
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
        data["comparison"] = comparison_table(report).records()
    return _clean(data)


def to_json(report: Report) -> str:
    return json.dumps(to_data(report), indent=2, default=str) + "\n"


def to_csv(report: Report) -> str:
    """Configurations (one row each, a ``study`` column first); with ``--by``, the effect rows instead.
    Attention diagnostics are not in the CSV (see the module docstring): use ``--format json``."""
    rows = [r for s in report.studies for r in (effect_records(s) if report.by else configuration_table(s).records())]
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
