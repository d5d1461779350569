"""`deconstruct report` on a small real study: every number equals a recomputation from the run rows."""

from __future__ import annotations

import csv
import io
import json
import math
import statistics

import numpy as np
import pytest
from _support import cli
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from deconstruct.report import t_quantile
from deconstruct.store._schema import DiagnosticRow, RunRow, StudyRow

KIND, LAYOUT = "model.mixer.kind", "model.layout"


def report(tiny_study, *args, ok=True):
    res = cli("report", *args, "--storage", tiny_study["url"])
    if ok:
        assert res.exit_code == 0, res.stderr + res.stdout
    return res


def report_json(tiny_study, *args) -> dict:
    return json.loads(report(tiny_study, *args, "--format", "json").stdout)


def t975(df: int) -> float:
    try:
        from scipy.stats import t
    except ImportError:  # the hand-written quantile is checked against a printed table in test_stats.py
        return t_quantile(0.95, df)
    return float(t.ppf(0.975, df))


def expected_configs(url: str, study: str) -> dict[str, dict]:
    """Straight from dc_run: group by config_hash, one completed run per seed (earliest trial), t-interval."""
    engine = create_engine(url)
    with Session(engine) as s:
        sid = s.scalars(select(StudyRow.id).where(StudyRow.name == study)).one()
        rows = s.scalars(select(RunRow).where(RunRow.study_id == sid).order_by(RunRow.trial_number)).all()
        out: dict[str, dict] = {}
        for r in rows:
            c = out.setdefault(r.config_hash, {"runs": [], "by_seed": {}})
            c["runs"].append((r.status, r.error))
            if r.status == "completed" and r.seed not in c["by_seed"]:
                c["by_seed"][r.seed] = (r.val_loss, r.params, r.flops_per_token, r.tokens_per_second, r.wall_seconds)
    engine.dispose()
    for c in out.values():
        vals = [v[0] for _, v in sorted(c["by_seed"].items())]
        c["n"], c["mean"] = len(vals), statistics.fmean(vals)
        half = t975(len(vals) - 1) * statistics.stdev(vals) / math.sqrt(len(vals)) if len(vals) > 1 else None
        c["ci"] = (c["mean"] - half, c["mean"] + half) if half is not None else (None, None)
        first = next(iter(c["by_seed"].values()))
        c["params"], c["flops"] = first[1], first[2]
        c["tps"] = statistics.fmean(v[3] for v in c["by_seed"].values())
        c["wall"] = statistics.fmean(v[4] for v in c["by_seed"].values())
        c["status"] = {k: sum(1 for st, _ in c["runs"] if st == k) for k in ("completed", "pruned", "failed")}
        c["failures"] = [e for st, e in c["runs"] if st == "failed"]
    return out


def test_configuration_numbers_equal_a_recomputation_from_the_run_rows(tiny_study):
    data = report_json(tiny_study, "tiny-ablation")
    (study,) = data["studies"]
    expected = expected_configs(tiny_study["url"], "tiny-ablation")
    got = {c["config_hash"]: c for c in study["configurations"]}
    assert set(got) == set(expected) and len(got) == 3  # attention×hybrid resolves to attention×uniform
    for h, e in expected.items():
        c = got[h]
        assert c["n"] == e["n"] == 2 and c["seeds"] == [0, 1]
        assert c["mean"] == pytest.approx(e["mean"], rel=1e-12, abs=0)
        assert (c["ci_low"], c["ci_high"]) == (pytest.approx(e["ci"][0], rel=1e-12), pytest.approx(e["ci"][1], rel=1e-12))
        assert c["params"] == e["params"] and c["flops_per_token"] == e["flops"]
        assert c["tokens_per_second"] == pytest.approx(e["tps"]) and c["wall_seconds"] == pytest.approx(e["wall"])
        assert {k: c["status"][k] for k in e["status"]} == e["status"]
        assert [f["reason"] for f in c["failures"] for _ in range(f["count"])] == e["failures"]
    # the study as recorded: 6 completed runs + 1 interrupted; 5 trials, one failed (interrupted, retried)
    assert study["runs"] == {"total": 7, "completed": 6, "pruned": 0, "failed": 1, "running": 0}
    assert study["trials"] == {"total": 5, "completed": 4, "pruned": 0, "failed": 1, "running": 0}
    attention = next(c for c in study["configurations"] if c[KIND] == "attention")
    assert attention[LAYOUT] == "uniform|hybrid" and attention["failures"] == [{"reason": "interrupted", "count": 1}]
    assert attention["configuration"] == "mixer.kind=attention, layout=uniform|hybrid"
    assert attention["status"]["completed"] == 2 and attention["n"] == 2
    # ranked best first; the values are the trained results themselves, and each configuration's mean is the
    # value its trials reported (the study runner's objective: the mean over seeds)
    means = [c["mean"] for c in study["configurations"]]
    assert means == sorted(means) and [c["rank"] for c in study["configurations"]] == [1, 2, 3]
    r = tiny_study["results"]
    mu = next(c for c in study["configurations"] if c["configuration"] == "mixer.kind=mlp, layout=uniform")
    assert mu["values"] == [r["mlp", "uniform", 0].val_loss, r["mlp", "uniform", 1].val_loss]
    from deconstruct.store import Store

    store = Store(tiny_study["url"], create=False)
    for t in store.trials("tiny-ablation"):
        if t.state == "completed":
            assert got[t.config_hash]["mean"] == pytest.approx(t.values[0], rel=1e-12)
    store.close()
    # learning curve: mean over the two seeds at every evaluation step
    curve = {step: v for step, v, n in mu["curve"]["points"]}
    for step in (1, 2, 3):
        per_seed = [v for s in (0, 1) for st, name, v in r["mlp", "uniform", s].history if name == "val_loss" and st == step]
        assert curve[step] == pytest.approx(statistics.fmean(per_seed))


def test_markdown_and_table_show_the_same_rounded_numbers(tiny_study):
    data = report_json(tiny_study, "tiny-ablation")
    md = report(tiny_study, "tiny-ablation", "--format", "markdown").stdout
    table = report(tiny_study, "tiny-ablation").stdout
    assert md.startswith("# deconstruct report: tiny-ablation")
    for c in data["studies"][0]["configurations"]:
        shown = f"{c['mean']:.4f} ± {c['ci_high'] - c['mean']:.4f}"
        line = next(ln for ln in md.splitlines() if c["configuration"].replace("|", "\\|") in ln)
        assert shown in line and "| 2 |" in line
        assert f"{c['mean']:.4f}" in table
    assert "2 completed, 1 failed (interrupted)" in md and "5 trials (4 completed, 1 failed)" in md
    assert "Student-t" in md and "Parameter importances" in md


def test_csv_and_json_carry_the_same_numbers(tiny_study):
    data = report_json(tiny_study, "tiny-ablation")
    rows = list(csv.DictReader(io.StringIO(report(tiny_study, "tiny-ablation", "--format", "csv").stdout)))
    configs = data["studies"][0]["configurations"]
    assert len(rows) == len(configs) == 3
    for row, c in zip(rows, configs, strict=True):
        assert row["study"] == "tiny-ablation" and row["config_hash"] == c["config_hash"]
        for key in ("mean", "ci_low", "ci_high", "std", "tokens_per_second", "wall_seconds"):
            assert float(row[key]) == c[key]  # full precision, not rounded
        for key in ("n", "params", "flops_per_token", "rank"):
            assert int(row[key]) == c[key]
        assert row[KIND] == c[KIND] and row[LAYOUT] == c[LAYOUT]
        assert int(row["failed"]) == c["status"]["failed"]


LAYER_LEVEL = ("head_diversity", "sink_secondary_mlp_norm")  # diagnostics stored with head −1


def expected_diagnostics(url: str, study: str) -> dict[str, dict]:
    """Straight from dc_diagnostic: per configuration, the rows of its earliest completed run of each seed;
    per (layer, indicator) the mean over every (seed, head) value, and per head the mean over seeds."""
    engine = create_engine(url)
    with Session(engine) as s:
        sid = s.scalars(select(StudyRow.id).where(StudyRow.name == study)).one()
        used: dict[str, dict[int, int]] = {}  # config_hash -> seed -> run id
        for r in s.scalars(select(RunRow).where(RunRow.study_id == sid, RunRow.status == "completed")
                           .order_by(RunRow.trial_number, RunRow.id)):
            used.setdefault(r.config_hash, {}).setdefault(r.seed, r.id)
        out: dict[str, dict] = {}
        for h, by_seed in used.items():
            layers: dict[int, dict[str, dict[int, list[float]]]] = {}
            for d in s.scalars(select(DiagnosticRow).where(DiagnosticRow.run_id.in_(list(by_seed.values())))):
                layers.setdefault(d.layer, {}).setdefault(d.name, {}).setdefault(d.head, []).append(d.value)
            out[h] = {
                layer: {name: {"mean": statistics.fmean(v for vs in heads.values() for v in vs),
                               "per_head": [statistics.fmean(heads[i]) for i in sorted(heads)],
                               "n": len(next(iter(heads.values())))}
                        for name, heads in names.items()}
                for layer, names in layers.items()
            }
    engine.dispose()
    return out


def test_attention_diagnostics_equal_a_recomputation_from_the_diagnostic_rows(tiny_study):
    data = report_json(tiny_study, "tiny-ablation")
    (study,) = data["studies"]
    expected = expected_diagnostics(tiny_study["url"], "tiny-ablation")
    by_label = {c["configuration"]: c for c in study["configurations"]}
    for c in study["configurations"]:
        d, e = c["diagnostics"], expected[c["config_hash"]]
        assert [x["layer"] for x in d["layers"]] == sorted(e)
        for x in d["layers"]:
            assert set(x["mean"]) == set(e[x["layer"]]) >= {"entropy", "sink", "local_0", "head_diversity"}
            for name, want in e[x["layer"]].items():
                assert x["mean"][name] == pytest.approx(want["mean"], rel=1e-12), (c["configuration"], name)
                if name not in LAYER_LEVEL:
                    assert x["per_head"][name] == pytest.approx(want["per_head"], rel=1e-12)
            assert x["n"] == 2 and x["heads"] == 2 and x["mixer"] == "attention"
            assert not set(LAYER_LEVEL) & set(x["per_head"])  # one value per layer (head -1)
    # and the rows are the trained results themselves: entropy of layer 1, head 0, mean over the two seeds
    r = tiny_study["results"]
    attention = by_label["mixer.kind=attention, layout=uniform|hybrid"]["diagnostics"]
    per_seed = [v for s in (0, 1) for layer, head, name, v in r["attention", "uniform", s].diagnostics
                if (layer, head, name) == (1, 0, "entropy")]
    assert attention["layers"][0]["per_head"]["entropy"][0] == pytest.approx(statistics.fmean(per_seed), rel=1e-12)
    # the token-wise mixer has no attention map: a whole configuration, and layer 1 of the hybrid layout
    mu = by_label["mixer.kind=mlp, layout=uniform"]["diagnostics"]
    assert mu["layers"] == [] and mu["reason"] == "no attention map (token-wise mixer)" and mu["n_runs"] == 0
    mh = by_label["mixer.kind=mlp, layout=hybrid"]["diagnostics"]
    assert [x["layer"] for x in mh["layers"]] == [2] and mh["reason"] is None
    assert mh["missing"] == [{"layer": 1, "mixer": "mlp", "reason": "no attention map (token-wise mixer)"}]
    assert study["diagnostics"]["recorded"] is True
    note = ("Not shown, no attention map (token-wise mixer): mixer.kind=mlp, layout=uniform; "
            "layer 1 (mlp) of mixer.kind=mlp, layout=hybrid.")
    assert study["diagnostics"]["notes"] == [note]

    # markdown and the terminal table: one row per configuration × layer, rounded, in rank order
    md = report(tiny_study, "tiny-ablation", "--format", "markdown").stdout
    section = md.split("## Attention diagnostics\n", 1)[1].split("\n## ", 1)[0]
    rows = [ln for ln in section.splitlines() if ln.startswith("| mixer")]
    want = [(c["configuration"], x) for c in study["configurations"] for x in c["diagnostics"]["layers"]]
    assert len(rows) == len(want) == 3
    for line, (label, x) in zip(rows, want, strict=True):
        cells = [cell.strip() for cell in line.strip("|").split(" | ")]
        assert cells[0] == label.replace("|", "\\|") and cells[1:4] == [str(x["layer"]), "attention", "2"]
        assert cells[4:7] == [f"{x['mean'][k]:.4f}" for k in ("entropy", "sink", "local_0")]
        assert float(cells[7]) == pytest.approx(x["mean"]["head_diversity"], rel=1e-3)
    assert note in section and "mean over seeds and heads" in section
    table = report(tiny_study, "tiny-ablation").stdout
    assert "Attention diagnostics" in table and note in table
    for _, x in want:
        assert f"{x['mean']['sink']:.4f}" in table and f"{x['mean']['local_0']:.4f}" in table
    # not in the CSV (one row per configuration; see deconstruct.report._data)
    header = report(tiny_study, "tiny-ablation", "--format", "csv").stdout.splitlines()[0]
    assert "entropy" not in header and "diagnostic" not in header


def test_a_study_without_diagnostics_gets_a_one_line_note(tiny_study):
    data = report_json(tiny_study, "tiny-one")["studies"][0]
    (c,) = data["configurations"]
    assert c["diagnostics"]["layers"] == [] and c["diagnostics"]["reason"] == "no diagnostics recorded for its runs"
    line = f"Attention diagnostics: none in this study (no diagnostics recorded for its runs: {c['configuration']})."
    assert data["diagnostics"] == {"recorded": False, "aggregation": data["diagnostics"]["aggregation"],
                                   "notes": [line]}
    for fmt in ("markdown", "table"):
        out = report(tiny_study, "tiny-one", "--format", fmt).stdout
        assert out.count(line) == 1 and "entropy (nats)" not in out, fmt


def _paired(diffs):
    d = np.asarray(diffs)
    idx = np.random.default_rng(0).integers(0, d.size, size=(5000, d.size))
    lo, hi = np.percentile(d[idx].mean(axis=1), [2.5, 97.5])
    return d.mean(), lo, hi


def test_by_axis_paired_differences_equal_a_hand_recomputation(tiny_study):
    r = {k: v.val_loss for k, v in tiny_study["results"].items()}  # (kind, layout, seed) -> val_loss
    data = report_json(tiny_study, "tiny-ablation", "--by", KIND)
    (effect,) = data["studies"][0]["effects"]
    assert data["studies"][0]["baselines"][KIND] == {"value": "attention", "reason": "the standard value"}
    # pairs: same layout, same seed; in the order of the search points (trials), then seeds
    diffs = [r["mlp", "uniform", s] - r["attention", "uniform", s] for s in (0, 1)]
    diffs += [r["mlp", "hybrid", s] - r["attention", "hybrid", s] for s in (0, 1)]
    mean, lo, hi = _paired(diffs)
    assert effect["value"] == "mlp" and effect["baseline"] == "attention" and effect["paired"] is True
    assert effect["method"] == "paired bootstrap" and effect["n_pairs"] == 4 and effect["n_configs"] == 2
    assert effect["diff"] == pytest.approx(mean, rel=1e-12)
    assert (effect["ci_low"], effect["ci_high"]) == (pytest.approx(lo, rel=1e-12), pytest.approx(hi, rel=1e-12))
    base = statistics.fmean(r["attention", la, s] for la in ("uniform", "hybrid") for s in (0, 1))
    assert effect["relative"] == pytest.approx(mean / base)

    # the other axis, against a chosen baseline (the suffix form of the axis works too); attention×uniform
    # and attention×hybrid are one configuration: those pairs are not evidence and are left out (counted)
    data = report_json(tiny_study, "tiny-ablation", "--by", "layout", "--baseline", "hybrid")
    (effect,) = data["studies"][0]["effects"]
    diffs = [r["mlp", "uniform", s] - r["mlp", "hybrid", s] for s in (0, 1)]
    mean, lo, hi = _paired(diffs)
    assert (effect["value"], effect["baseline"], effect["n_pairs"], effect["n_identical"]) == ("uniform", "hybrid", 2, 2)
    assert any("2 seed pair(s) left out, both sides being the same model" in n for n in data["studies"][0]["notes"])
    assert (effect["diff"], effect["ci_low"], effect["ci_high"]) == pytest.approx((mean, lo, hi), rel=1e-12)

    csv_rows = list(csv.DictReader(io.StringIO(
        report(tiny_study, "tiny-ablation", "--by", LAYOUT, "--baseline", "hybrid", "--format", "csv").stdout)))
    assert [(row["axis"], row["value"], float(row["diff"])) for row in csv_rows] == [(LAYOUT, "uniform", effect["diff"])]


def test_by_axis_without_pairs_is_unpaired_and_says_so(tiny_study):
    r = {k: v.val_loss for k, v in tiny_study["results"].items()}
    data = report_json(tiny_study, "tiny-unpaired", "--by", KIND)
    (effect,) = data["studies"][0]["effects"]
    a = np.asarray([r["mlp", "hybrid", 0], r["mlp", "hybrid", 1]])  # mlp×uniform was pruned: no completed run
    b = np.asarray([r["attention", "uniform", 0], r["attention", "uniform", 1]])
    rng = np.random.default_rng(0)
    ia, ib = rng.integers(0, 2, size=(5000, 2)), rng.integers(0, 2, size=(5000, 2))
    lo, hi = np.percentile(a[ia].mean(1) - b[ib].mean(1), [2.5, 97.5])
    assert effect["paired"] is False and effect["method"] == "unpaired bootstrap" and effect["n_pairs"] == 0
    assert (effect["n_runs"], effect["n_baseline_runs"], effect["n_configs"]) == (2, 2, 1)
    assert (effect["diff"], effect["ci_low"], effect["ci_high"]) == pytest.approx((a.mean() - b.mean(), lo, hi), rel=1e-12)
    md = report(tiny_study, "tiny-unpaired", "--by", KIND, "--format", "markdown").stdout
    assert "unpaired bootstrap" in md and "2 vs 2 runs (1 vs 1 config)" in md
    # the pruned configuration: listed, unranked, no mean, its run counted
    pruned = next(c for c in report_json(tiny_study, "tiny-unpaired")["studies"][0]["configurations"]
                  if c["configuration"] == "mixer.kind=mlp, layout=uniform")
    assert pruned["rank"] is None and pruned["mean"] is None and pruned["n"] == 0 and pruned["status"]["pruned"] == 1


def test_importances_are_optunas_and_too_few_trials_says_why(tiny_study):
    import optuna

    data = report_json(tiny_study, "tiny-ablation")
    imp = data["studies"][0]["importances"]
    study = optuna.load_study(study_name="tiny-ablation", storage=tiny_study["url"])
    expected = optuna.importance.get_param_importances(study)
    assert imp["values"] == pytest.approx(expected) and set(imp["values"]) == {KIND, LAYOUT}
    assert imp["n_trials"] == 4 and "Optuna" in imp["evaluator"]
    few = report_json(tiny_study, "tiny-unpaired")["studies"][0]["importances"]
    assert few["values"] is None and few["note"] == "parameter importances need at least 4 completed trials; this study has 2"
    none = report_json(tiny_study, "tiny-one")["studies"][0]["importances"]
    assert none["values"] is None and "lacks" in none["note"]


def test_pareto_front_of_a_multi_objective_study_matches_optuna(tiny_study):
    import optuna

    data = report_json(tiny_study, "tiny-pareto")
    s = data["studies"][0]
    assert s["objectives"] == ["val_loss", "params"] and s["pareto"] is not None
    study = optuna.load_study(study_name="tiny-pareto", storage=tiny_study["url"])
    keys = [("attention", "uniform"), ("attention", "hybrid"), ("mlp", "uniform"), ("mlp", "hybrid")]  # trials
    optuna_front = {tiny_study["resolved"][keys[t.number]].config_hash() for t in study.best_trials}
    assert set(s["pareto"]["front"]) == optuna_front
    assert {c["config_hash"] for c in s["configurations"] if c["pareto"]} == optuna_front
    for c in s["configurations"]:
        assert c["mean_params"] == c["params"]
    md = report(tiny_study, "tiny-pareto", "--format", "markdown").stdout
    assert "Pareto front (val_loss vs params)" in md
    assert report_json(tiny_study, "tiny-ablation")["studies"][0]["pareto"] is None  # single objective: none


def test_one_seed_has_no_interval_and_says_so(tiny_study):
    (c,) = report_json(tiny_study, "tiny-one")["studies"][0]["configurations"]
    assert c["n"] == 1 and c["configuration"].startswith("config ") and c["ci_low"] is None and c["ci_high"] is None and "no interval" in c["ci_method"]
    assert c["mean"] == tiny_study["results"]["attention", "uniform", 0].val_loss
    assert "(n=1, no CI)" in report(tiny_study, "tiny-one", "--format", "markdown").stdout


def test_two_studies_side_by_side(tiny_study):
    data = report_json(tiny_study, "tiny-ablation", "tiny-unpaired")
    assert [s["name"] for s in data["studies"]] == ["tiny-ablation", "tiny-unpaired"]
    rows = {r["configuration"]: r for r in data["comparison"]}
    # matched by shared searched values, so the merged attention configuration meets its single-point twin
    assert list(rows) == ["mixer.kind=mlp, layout=hybrid", "mixer.kind=mlp, layout=uniform",
                          "mixer.kind=attention, layout=uniform|hybrid"]
    a = {c["configuration"]: c for c in data["studies"][0]["configurations"]}
    assert rows["mixer.kind=mlp, layout=hybrid"]["tiny-ablation"]["mean"] == a["mixer.kind=mlp, layout=hybrid"]["mean"]
    assert rows["mixer.kind=mlp, layout=hybrid"]["tiny-unpaired"]["mean"] == a["mixer.kind=mlp, layout=hybrid"]["mean"]
    assert rows["mixer.kind=mlp, layout=uniform"]["tiny-unpaired"] == {"mean": None, "ci_low": None, "ci_high": None, "n": 0}
    assert rows["mixer.kind=attention, layout=uniform|hybrid"]["tiny-unpaired"]["n"] == 2
    md = report(tiny_study, "tiny-ablation", "tiny-unpaired", "--format", "markdown").stdout
    assert "## Side by side" in md and "## tiny-ablation" in md and "## tiny-unpaired" in md
    assert "— (1 pruned)" in md
    rows = list(csv.DictReader(io.StringIO(report(tiny_study, "tiny-ablation", "tiny-unpaired", "--format", "csv").stdout)))
    assert [r["study"] for r in rows] == ["tiny-ablation"] * 3 + ["tiny-unpaired"] * 3
    # an axis only one of them searched: a note for the other, not an error
    data = report_json(tiny_study, "tiny-ablation", "tiny-one", "--by", LAYOUT)
    assert data["studies"][0]["effects"] and not data["studies"][1]["effects"]
    assert any("did not search" in n for n in data["studies"][1]["notes"])


def test_unknown_study_exits_2_listing_the_studies(tiny_study):
    res = report(tiny_study, "nope", ok=False)
    assert res.exit_code == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert "'nope'" in lines[0] and "tiny-ablation, tiny-one, tiny-pareto, tiny-unpaired" in lines[0]


def test_bad_input_is_one_line_exit_2(tiny_study, tmp_path):
    for args, words in [
        (["tiny-ablation", "--by", "model.heads"], "did not search 'model.heads'"),
        (["tiny-ablation", "--by", KIND, "--baseline", "rnn"], "values: attention, mlp"),
        (["tiny-ablation", "--baseline", "mlp"], "--baseline needs --by"),
    ]:
        res = report(tiny_study, *args, ok=False)
        assert res.exit_code == 2 and words in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
    missing = tmp_path / "missing.db"
    res = cli("report", "x", "--storage", f"sqlite:///{missing}")
    assert res.exit_code == 2 and "no database" in res.stderr and not missing.exists()


def test_storage_from_the_environment_and_out_file(tiny_study, tmp_path):
    out = tmp_path / "r.md"
    res = cli("report", "tiny-one", "--format", "markdown", "--out", out, env={"DECONSTRUCT_STORAGE": tiny_study["url"]})
    assert res.exit_code == 0, res.stderr
    assert out.read_text().startswith("# deconstruct report: tiny-one") and res.stdout == ""



def test_interaction_table_equals_a_hand_computation_from_the_runs(tiny_study):
    """The quickstart design: the mixer's effect at each layout, and the layout's effect at each mixer (where
    attention's two layouts are one model: no pairs, said so), from the run rows by hand."""
    r = {k: v.val_loss for k, v in tiny_study["results"].items()}
    study = report_json(tiny_study, "tiny-ablation")["studies"][0]
    rows = {(x["axis"], x["other_value"], x["value"]): x for x in study["interactions"]}
    for layout in ("uniform", "hybrid"):
        want = statistics.fmean(r["mlp", layout, s] - r["attention", layout, s] for s in (0, 1))
        assert rows[KIND, layout, "mlp"]["diff"] == pytest.approx(want, rel=1e-12)
    want = statistics.fmean(r["mlp", "hybrid", s] - r["mlp", "uniform", s] for s in (0, 1))
    assert rows[LAYOUT, "mlp", "hybrid"]["diff"] == pytest.approx(want, rel=1e-12)
    assert rows[LAYOUT, "attention", "hybrid"]["diff"] is None
    assert rows[LAYOUT, "attention", "hybrid"]["verdict"] == "no data"


def test_an_unmatched_comparison_is_flagged_with_its_cost_difference(tiny_study):
    """mlp and attention at equal steps: the same parameters (the mlp is matched by construction) but fewer
    FLOPs per token, so fewer training FLOPs — flagged with the percentage the runs give."""
    res = tiny_study["results"]
    study = report_json(tiny_study, "tiny-ablation", "--by", KIND)["studies"][0]
    (effect,) = study["effects"]

    def flops(kind):
        runs = [res[kind, la, s] for la in ("uniform", "hybrid") for s in (0, 1)]
        return statistics.fmean(x.flops_per_token for x in runs) * statistics.fmean(x.tokens for x in runs)

    rel = flops("mlp") / flops("attention") - 1
    assert abs(rel) > 0.02
    assert effect["mismatch"] == f"not matched: {rel * 100:+.0f} % training FLOPs"
    assert "parameters not matched (study.match); training budget: equal steps" in study["matched"]


def test_holm_adjusted_p_values_in_the_effect_rows(tiny_study):
    """One comparison per axis here: Holm leaves a single p-value as it is; the p-value is the paired t-test's."""
    from scipy import stats

    r = {k: v.val_loss for k, v in tiny_study["results"].items()}
    (effect,) = report_json(tiny_study, "tiny-ablation", "--by", KIND)["studies"][0]["effects"]
    diffs = [r["mlp", la, s] - r["attention", la, s] for la in ("uniform", "hybrid") for s in (0, 1)]
    assert effect["p"] == pytest.approx(stats.ttest_1samp(diffs, 0.0).pvalue, rel=1e-9)
    assert effect["p_holm"] == pytest.approx(effect["p"], rel=1e-12)


def test_code_table_lists_each_configurations_code_and_flags_mixed_code():
    """The report says which code (deconstruct version/commit, plugins and versions) made each configuration;
    seeds made by two versions of a plugin are flagged."""
    from types import SimpleNamespace

    from deconstruct.report._tables import code_table

    def run(source):
        return SimpleNamespace(versions={"deconstruct": "1.2.3", "deconstruct_commit": "abcdef123456"},
                               plugins=[{"name": "mixit", "version": "0.4", "source": source},
                                        {"name": "deconstruct.builtin.tasks", "version": "1.2.3"}])

    same = SimpleNamespace(label="kind=a", used=[run("s1"), run("s1")], runs=[])
    mixed = SimpleNamespace(label="kind=b", used=[run("s1"), run("s2")], runs=[])
    table = code_table(SimpleNamespace(configurations=[same, mixed]))
    cells = table.cells()
    assert cells[0] == ["kind=a", "1.2.3 @abcdef123456", "mixit 0.4 (source s1), tasks 1.2.3"]
    assert cells[1][2] == "mixit 0.4 (source s1), tasks 1.2.3; mixit 0.4 (source s2), tasks 1.2.3"
    assert table.notes == ["made by more than one version of the code: kind=b"]
