"""The one table layer: every table of a report, defined once, for every output format.

A :class:`Table` is a title, :class:`Column` s and row objects. A column is *shown* (under ``head``, in the
terminal, Markdown and HTML, as text rounded for reading) and/or *stored* (under ``key``, in CSV and JSON, at
full precision); most are both. Renderers never decide what a column holds, how a number is rounded or which
columns are numeric: :meth:`Table.head`, :meth:`Table.cells`, :meth:`Table.numeric` and :meth:`Table.records`
say it. Numbers are shown through :func:`deconstruct.metrics.show` and :func:`deconstruct.metrics.human`.

To add a column, add a :class:`Column` to the table's function below; to add a table, write one more function
returning a :class:`Table`, add it to :class:`StudyTables` and lay it out in each renderer (:mod:`._terminal`,
:mod:`._markdown`, :mod:`._html`; :mod:`._data` for CSV/JSON).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from deconstruct.metrics import human, show, train_flops
from deconstruct.report._configs import point_key
from deconstruct.report._model import (
    AxisEffects,
    Configuration,
    Effect,
    Interaction,
    Report,
    StudyReport,
    fmt_value,
    short_axis,
)

CI_LABEL = "95% CI"
HOLM_NOTE = ("p (Holm): two-sided paired t-test of the mean difference, Holm-adjusted over this axis's "
             "comparisons (family-wise 5 %); a verdict whose interval excludes 0 but whose adjusted p does not "
             "pass says so. controls: whether the two sides have the same parameters and training FLOPs within "
             "the study's tolerance (2 % unless study.match says otherwise); pairs of one identical model are "
             "left out.")
CI_NOTE = ("mean ± half-width of the two-sided 95% Student-t interval over seeds (n = seeds with a completed "
           "run; n=1 has no interval). Effects: mean difference with a 95% percentile bootstrap interval "
           "(paired over runs that share every other searched value and the seed when such pairs exist, "
           "otherwise unpaired; fixed RNG seed).")
#: (indicator, column heading) of the diagnostics table; the JSON has every indicator
DIAG_COLUMNS = (("entropy", "entropy (nats)"), ("sink", "sink"), ("local_0", "local_0"),
                ("head_diversity", "head diversity"))
DIAG_NOTE = ("Attention indicators of each layer on a few validation sequences after training, mean over seeds "
             "and heads (Xue et al. 2025): entropy of a query's attention row (nats; low = focused), sink = "
             "weight on position 1, local_0 = weight on the query's own position, head diversity = std across "
             "heads of the map (one value per layer, mean over seeds).")
#: costs that have a column of their own in the configuration table
COST_COLUMNS = ("params", "flops_per_token", "tokens_per_second", "wall_seconds")


@dataclass(frozen=True)
class Column:
    """One column. ``head``: its heading where tables are shown (None: only in CSV/JSON); ``key``: its name
    in CSV/JSON (None: only shown). ``value(row)``: the full-precision value; ``text(row)``: the shown text
    (default: ``value`` as text). ``numeric``: right-aligned, never wrapped."""

    head: str | None
    key: str | None
    value: Callable[..., Any] | None = None  # called with the row only (lambdas may bind loop variables)
    text: Callable[..., str] | None = None
    numeric: bool = False

    def show(self, row: Any) -> str:
        if self.text is not None:
            return self.text(row)
        v = self.value(row) if self.value is not None else None
        return "—" if v is None else fmt_value(v)


@dataclass
class Table:
    """A titled table. Shown column ``key`` (and those before it) name the row: a configuration, a value.
    ``group``: consecutive rows with the same first cell belong together (the terminal shows it once)."""

    title: str
    columns: list[Column]
    rows: list[Any]
    key: int = 0
    group: bool = False
    notes: list[str] = field(default_factory=list)  # what to read under the table

    @property
    def shown(self) -> list[Column]:
        return [c for c in self.columns if c.head is not None]

    def head(self) -> list[str]:
        return [c.head for c in self.shown]  # type: ignore[misc]

    def cells(self) -> list[list[str]]:
        return [[c.show(r) for c in self.shown] for r in self.rows]

    def numeric(self) -> set[int]:
        """Indices (among the shown columns) of the numeric ones."""
        return {i for i, c in enumerate(self.shown) if c.numeric}

    def records(self) -> list[dict[str, Any]]:
        """One dict per row of the stored columns, full precision (what CSV and JSON carry)."""
        stored = [c for c in self.columns if c.key is not None]
        return [{c.key: c.value(r) if c.value is not None else None for c in stored} for r in self.rows]  # type: ignore[misc]


def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def signed(name: str, x: float | None) -> str:
    s = show(name, x)
    return s if x is None or s.startswith("-") or s == "—" else "+" + s


def mean_ci(name: str, c: Configuration) -> str:
    """``5.3395 ± 0.5250`` (the mean and the interval's half-width), ``… (n=1, no CI)`` or ``—``."""
    iv = c.objective
    if iv.estimate is None:
        return "—"
    if not iv.has_interval:
        return f"{show(name, iv.estimate)} (n=1, no CI)"
    return f"{show(name, iv.estimate)} ± {show(name, iv.high - iv.estimate)}"  # type: ignore[operator]


def runs_text(c: Configuration) -> str:
    """``2 completed, 1 failed (interrupted)``."""
    parts = [f"{c.status[s]} {s}" for s in ("completed", "pruned", "failed", "running") if c.status.get(s)]
    text = ", ".join(parts) or "none"
    if c.failures:
        text += " (" + "; ".join(f"{reason}" + (f" ×{n}" if n > 1 else "") for reason, n in c.failures) + ")"
    return text


# ------------------------------------------------------------------------------------------ configurations


def configuration_table(s: StudyReport) -> Table:
    """One row per configuration in rank order: the reported value (mean ± CI over seeds) and the costs."""
    obj = s.objective
    cols = [
        Column(None, "study", lambda c: s.name),
        Column("#", "rank", lambda c: c.rank, lambda c: str(c.rank or "—"), numeric=True),
        Column("configuration", "configuration", lambda c: c.label),
        Column(None, "config_hash", lambda c: c.config_hash),
    ]
    cols += [Column(None, a, lambda c, a=a: "|".join(fmt_value(v) for v in c.axis_values(a))) for a in s.axes]
    cols += [
        Column(None, "objective", lambda c: obj),
        Column(f"{obj} ({CI_LABEL})", None, text=lambda c: mean_ci(obj, c), numeric=True),
        Column(None, "mean", lambda c: c.objective.estimate),
        Column(None, "ci_low", lambda c: c.objective.low),
        Column(None, "ci_high", lambda c: c.objective.high),
        Column(None, "ci_method", lambda c: c.objective.method),
        Column("n", "n", lambda c: c.objective.n, numeric=True),
        Column(None, "std", lambda c: c.objective.std),
        Column(None, "seeds", lambda c: " ".join(str(x) for x in c.seeds)),
    ]
    for o in s.objectives[1:]:  # further objectives: a shown column unless a cost column shows it already
        shown = o if o not in COST_COLUMNS else None
        cols.append(Column(shown, f"mean_{o}", lambda c, o=o: c.other.get(o),
                           lambda c, o=o: show(o, c.other.get(o)), numeric=True))
    if s.pareto is not None:
        cols.append(Column("Pareto", "pareto", lambda c: c.pareto, lambda c: "★" if c.pareto else "", numeric=True))
    cols += [
        Column("params", "params", lambda c: c.params, lambda c: human(c.params), numeric=True),
        Column("FLOPs/token", "flops_per_token", lambda c: c.flops_per_token, lambda c: human(c.flops_per_token),
               numeric=True),
        Column("tokens", "tokens", lambda c: c.tokens, lambda c: human(c.tokens), numeric=True),
        Column("train FLOPs", "train_flops", lambda c: train_flops(c.flops_per_token, c.tokens),
               lambda c: human(train_flops(c.flops_per_token, c.tokens)), numeric=True),
        Column("tokens/s", "tokens_per_second", lambda c: c.tokens_per_second, lambda c: human(c.tokens_per_second),
               numeric=True),
        Column("wall s/run", "wall_seconds", lambda c: c.wall_seconds, lambda c: show("wall_seconds", c.wall_seconds),
               numeric=True),
        Column(None, "wall_seconds_total", lambda c: c.wall_seconds_total),
    ]
    cols += [Column(None, st, lambda c, st=st: c.status.get(st, 0)) for st in ("completed", "pruned", "failed", "running")]
    cols += [
        Column("runs", None, text=runs_text),
        Column(None, "failure_reasons", lambda c: "; ".join(f"{r} ({n})" for r, n in c.failures)),
    ]
    return Table("Configurations", cols, s.configurations, key=1, notes=[f"{obj}: {CI_NOTE}"])


# ------------------------------------------------------------------------------------------ effects


def effect_title(s: StudyReport, ae: AxisEffects) -> str:
    better = "lower" if s.direction == "minimize" else "higher"
    return (f"Effect of {ae.axis} vs {fmt_value(ae.baseline)} ({ae.baseline_reason}); "
            f"Δ = value − baseline, {better} {s.objective} is better")


def _backing(e: Effect) -> str:
    if e.paired:
        return f"{plural(e.n_pairs, 'seed pair')} over {plural(e.n_configs, 'config pair')}"
    return (f"{e.n_runs} vs {plural(e.n_baseline_runs, 'run')} "
            f"({e.n_configs} vs {plural(e.n_baseline_configs, 'config')})")


def effect_table(s: StudyReport, ae: AxisEffects) -> Table:
    """One row per value of the axis other than the baseline."""
    obj = s.objective
    cols = [
        Column(None, "study", lambda e: s.name),
        Column(None, "axis", lambda e: e.axis),
        Column("value", "value", lambda e: fmt_value(e.value)),
        Column(None, "baseline", lambda e: fmt_value(e.baseline)),
        Column(None, "objective", lambda e: obj),
        Column(f"Δ {obj}", "diff", lambda e: e.interval.estimate, lambda e: signed(obj, e.interval.estimate),
               numeric=True),
        Column(CI_LABEL, None, text=lambda e: _interval_of(obj, e), numeric=True),
        Column(None, "ci_low", lambda e: e.interval.low),
        Column(None, "ci_high", lambda e: e.interval.high),
        Column("relative", "relative", lambda e: e.relative,
               lambda e: "—" if e.relative is None else f"{e.relative * 100:+.2f}%", numeric=True),
        Column("method", "method", lambda e: e.method),
        Column("backed by", None, text=_backing),
        Column(None, "paired", lambda e: e.paired),
        *(Column(None, k, lambda e, k=k: getattr(e, k))
          for k in ("n_pairs", "n_configs", "n_baseline_configs", "n_runs", "n_baseline_runs", "baseline_mean")),
        Column("p (Holm)", "p_holm", lambda e: e.p_holm, lambda e: _p(e.p_holm), numeric=True),
        Column(None, "p", lambda e: e.p_value),
        Column(None, "n_identical", lambda e: e.n_identical),
        Column("controls", "mismatch", lambda e: e.mismatch, lambda e: e.mismatch or "matched"),
        Column("verdict", "verdict", lambda e: e.verdict),
    ]
    return Table(effect_title(s, ae), cols, ae.effects, notes=[HOLM_NOTE])


def _p(p: float | None) -> str:
    return "—" if p is None else f"{p:.3g}"


def interaction_table(s: StudyReport, inter: Interaction) -> Table:
    """The effect of one axis at each value of another: one row per (other value, value)."""
    obj = s.objective
    rows = [(w, e) for w, ae in inter.by_value for e in ae.effects]
    cols = [
        Column(None, "study", lambda r: s.name),
        Column(None, "axis", lambda r: inter.axis),
        Column(None, "other_axis", lambda r: inter.other),
        Column(f"at {short_axis(inter.other)}", "other_value", lambda r: fmt_value(r[0])),
        Column("value", "value", lambda r: fmt_value(r[1].value)),
        Column(None, "baseline", lambda r: fmt_value(r[1].baseline)),
        Column(f"Δ {obj}", "diff", lambda r: r[1].interval.estimate, lambda r: signed(obj, r[1].interval.estimate),
               numeric=True),
        Column(CI_LABEL, None, text=lambda r: _interval_of(obj, r[1]), numeric=True),
        Column(None, "ci_low", lambda r: r[1].interval.low),
        Column(None, "ci_high", lambda r: r[1].interval.high),
        Column("backed by", None, text=lambda r: _backing(r[1]) if r[1].n_pairs or not r[1].paired
               else f"{r[1].n_identical} identical-model pairs only"),
        Column("verdict", "verdict", lambda r: r[1].verdict),
    ]
    base = fmt_value(inter.by_value[0][1].baseline) if inter.by_value else "—"
    title = f"Effect of {inter.axis} vs {base} at each value of {inter.other} (interaction)"
    return Table(title, cols, rows, notes=["The marginal effect above averages these rows; when they differ, "
                                           "the axes interact and the conditional rows are the ones to read."])


def _interval_of(name: str, e: Effect) -> str:
    iv = e.interval
    return "—" if not iv.has_interval else f"[{signed(name, iv.low)}, {signed(name, iv.high)}]"


def effect_records(s: StudyReport) -> list[dict[str, Any]]:
    """Every axis's effect rows, full precision (CSV with ``--by``, and JSON)."""
    return [r for ae in s.effects for r in effect_table(s, ae).records()]


# ------------------------------------------------------------------------------------------ the rest


def importance_table(s: StudyReport) -> Table | None:
    imp = s.importances
    if imp is None or not imp.values or not imp.shown:
        return None
    cols = [Column("parameter", "parameter", lambda kv: kv[0]),
            Column("importance", "importance", lambda kv: kv[1], lambda kv: f"{kv[1]:.3f}", numeric=True)]
    return Table(f"Parameter importances — {imp.evaluator}", cols, list(imp.values.items()), notes=[imp.note])


def pareto_table(s: StudyReport) -> Table | None:
    if s.pareto is None:
        return None
    cols = [Column("configuration", "configuration", lambda c: c.label)]
    cols += [Column(f"{o} ({d})", o, lambda c, o=o: c.other.get(o), lambda c, o=o: show(o, c.other.get(o)),
                    numeric=True) for o, d in zip(s.objectives, s.directions, strict=True)]
    return Table(f"Pareto front ({' vs '.join(s.objectives)})", cols, s.pareto)


def _code_of(c: Configuration) -> list[tuple[str, str]]:
    """The distinct (deconstruct, plugins) descriptions of a configuration's completed runs (all runs if none)."""
    from deconstruct._code import describe_deconstruct, describe_plugins

    runs = c.used or c.runs
    seen: list[tuple[str, str]] = []
    for r in runs:
        d = (describe_deconstruct(r.versions), describe_plugins(r.plugins))
        if d not in seen:
            seen.append(d)
    return seen


def code_table(s: StudyReport) -> Table:
    """The code behind each configuration: deconstruct's version and commit, the providing plugins and
    their versions (and source hashes). More than one line in a cell means the seeds were made by different
    code (the runner never reuses across code; a study continued after an upgrade can still mix)."""
    codes = {id(c): _code_of(c) for c in s.configurations}  # each configuration's runs read once
    cols = [
        Column("configuration", "configuration", lambda c: c.label),
        Column("deconstruct", "deconstruct", lambda c: [d for d, _ in codes[id(c)]],
               text=lambda c: "; ".join(d for d, _ in codes[id(c)]) or "—"),
        Column("plugins", "plugins", lambda c: [p for _, p in codes[id(c)]],
               text=lambda c: "; ".join(p for _, p in codes[id(c)]) or "—"),
    ]
    mixed = [c.label for c in s.configurations if len(codes[id(c)]) > 1]
    notes = [f"made by more than one version of the code: {'; '.join(mixed)}"] if mixed else []
    return Table("Code behind each configuration", cols, s.configurations, notes=notes)


def diagnostic_table(s: StudyReport) -> Table:
    """One row per configuration × layer with indicators, configurations in rank order."""
    rows = [(c, x) for c in s.configurations for x in (c.diagnostics.layers if c.diagnostics is not None else [])]
    cols = [
        Column("configuration", None, text=lambda r: r[0].label),
        Column("layer", None, text=lambda r: str(r[1].layer), numeric=True),
        Column("mixer", None, text=lambda r: r[1].mixer or "—"),
        Column("n", None, text=lambda r: str(r[1].n), numeric=True),
    ]
    cols += [Column(head, None, text=lambda r, k=k: show(k, r[1].mean.get(k)), numeric=True) for k, head in DIAG_COLUMNS]
    return Table("Attention diagnostics (mean over seeds and heads)", cols, rows, group=True, notes=[DIAG_NOTE])


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


def comparison_table(report: Report) -> Table:
    """Several studies side by side: each study's mean ± CI for configurations with the same searched values."""
    def cell(s: StudyReport, c: Configuration | None) -> str:
        if c is None:
            return "—"
        if c.objective.estimate is None:
            return f"— ({runs_text(c)})"
        return f"{mean_ci(s.objective, c)}, n={c.objective.n}"

    def data(c: Configuration | None) -> dict[str, Any] | None:
        iv = c.objective if c is not None else None
        return None if iv is None else {"mean": iv.estimate, "ci_low": iv.low, "ci_high": iv.high, "n": iv.n}

    cols = [Column("configuration", "configuration", lambda r: r["configuration"])]
    cols += [Column(f"{s.name}: {s.objective} ({CI_LABEL}), n", s.name, lambda r, s=s: data(r[s.name]),
                    lambda r, s=s: cell(s, r[s.name]), numeric=True) for s in report.studies]
    return Table("Side by side", cols, comparison_rows(report),
                 notes=["Configurations matched by their searched values; — means the study has no such configuration."])


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
    matched = f" · {s.matched}" if s.matched else ""
    return (f"objective: {objective} · {trials}{plural(runs, 'run')} ({', '.join(parts) or 'none'}) in "
            f"{plural(len(s.configurations), 'configuration')}{matched} · storage {s.storage}")


@dataclass
class StudyTables:
    """Every table and line of text one study shows, in reading order: what each format lays out. A new
    table (or note) goes here and into each renderer's layout."""

    summary: str
    configurations: Table
    effects: list[Table]  # one per compared axis, in the order of ``StudyReport.effects``
    interactions: list[Table]  # one per (compared axis, other axis), in the order of ``StudyReport.interactions``
    diagnostics: Table  # no rows when the study recorded none; ``diagnostic_notes`` says why
    diagnostic_notes: list[str]
    importances: Table | None  # None: see ``StudyReport.importances.note``
    pareto: Table | None  # multi-objective studies only
    code: Table  # the code (deconstruct, plugins, versions) behind each configuration


def study_tables(s: StudyReport) -> StudyTables:
    return StudyTables(
        summary=summary_line(s),
        configurations=configuration_table(s),
        effects=[effect_table(s, ae) for ae in s.effects],
        interactions=[interaction_table(s, i) for i in s.interactions],
        diagnostics=diagnostic_table(s),
        diagnostic_notes=diagnostic_notes(s),
        importances=importance_table(s),
        pareto=pareto_table(s),
        code=code_table(s),
    )
