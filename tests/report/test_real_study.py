"""`deconstruct report` on a study the real runner wrote (`deconstruct study run`, fixture ``real_study``):
every number equals a recomputation from ``Store(url).runs(name)`` — so runner and report cannot drift apart."""

from __future__ import annotations

import csv
import io
import json
import math
import statistics

import numpy as np
import pytest
from _support import cli
from scipy import stats

from deconstruct.store import Store

KIND, CHANNEL = "model.mixer.kind", "model.channel_mixer"


def report(real_study, *args) -> str:
    res = cli("report", real_study["name"], *args, "--storage", real_study["url"])
    assert res.exit_code == 0, res.stderr + res.stdout
    return res.stdout


def report_json(real_study, *args) -> dict:
    (study,) = json.loads(report(real_study, *args, "--format", "json"))["studies"]
    return study


def stored(real_study):
    """The runs, curves, diagnostics and trials as the runner stored them."""
    store = Store(real_study["url"], create=False)
    name = real_study["name"]
    out = store.runs(name), store.curves(name, "val_loss"), store.diagnostics(name), store.trials(name)
    store.close()
    return out


def by_point(runs) -> dict[tuple[str, str], dict[int, float]]:
    """(mixer kind, channel mixer) -> seed -> val_loss."""
    out: dict[tuple[str, str], dict[int, float]] = {}
    for r in runs:
        assert r.status == "completed"
        out.setdefault((r.search_params[KIND], r.search_params[CHANNEL]), {})[r.seed] = r.val_loss
    return out


def test_runner_wrote_four_configurations_of_two_seeds(real_study):
    runs, curves, _, trials = stored(real_study)
    assert len(runs) == 8 and len(trials) == 4 and all(t.state == "completed" for t in trials)
    assert len({r.config_hash for r in runs}) == 4
    assert sorted(by_point(runs)) == [(k, c) for k in ("attention", "mlp") for c in ("mlp", "none")]
    assert all(set(v) == {0, 1} for v in by_point(runs).values())
    assert all([st for st, _ in curves[r.id]["val_loss"]] == [2, 4] for r in runs)


def test_configuration_mean_and_t_interval_equal_a_recomputation_from_the_store(real_study):
    study = report_json(real_study)
    runs, curves, _, trials = stored(real_study)
    configs = study["configurations"]
    assert len(configs) == 4 and [c["rank"] for c in configs] == [1, 2, 3, 4]
    assert [c["mean"] for c in configs] == sorted(c["mean"] for c in configs)
    assert study["runs"] == {"total": 8, "completed": 8, "pruned": 0, "failed": 0, "running": 0}
    assert study["trials"] == {"total": 4, "completed": 4, "pruned": 0, "failed": 0, "running": 0}
    t975 = float(stats.t.ppf(0.975, 1))  # two seeds: one degree of freedom
    for c in configs:
        mine = sorted((r for r in runs if r.config_hash == c["config_hash"]), key=lambda r: r.seed)
        vals = [r.val_loss for r in mine]
        assert len(vals) == 2 and c["n"] == 2 and c["seeds"] == [0, 1] and c["values"] == vals
        assert (c[KIND], c[CHANNEL]) == (mine[0].search_params[KIND], mine[0].search_params[CHANNEL])
        mean, sd = statistics.fmean(vals), statistics.stdev(vals)
        half = t975 * sd / math.sqrt(2)
        assert c["mean"] == pytest.approx(mean, rel=1e-12) and c["std"] == pytest.approx(sd, rel=1e-9)
        assert c["ci_low"] == pytest.approx(mean - half, rel=1e-12)
        assert c["ci_high"] == pytest.approx(mean + half, rel=1e-12)
        assert c["ci_method"] == "student-t" and c["status"]["completed"] == 2
        assert c["params"] == mine[0].params and c["flops_per_token"] == mine[0].flops_per_token
        # the runner's objective for the trial is the mean over seeds, and the report agrees with it
        (trial,) = [t for t in trials if t.config_hash == c["config_hash"]]
        assert trial.values[0] == pytest.approx(c["mean"], rel=1e-12)
        # the learning curve: mean over the two seeds at every evaluation
        want = [(step, statistics.fmean(dict(curves[r.id]["val_loss"])[step] for r in mine), 2) for step in (2, 4)]
        got = [tuple(p) for p in c["curve"]["points"]]
        assert [(s, n) for s, _, n in got] == [(s, n) for s, _, n in want]
        assert [v for _, v, _ in got] == pytest.approx([v for _, v, _ in want], rel=1e-12)


def test_by_mixer_kind_paired_differences_equal_a_hand_recomputation(real_study):
    study = report_json(real_study, "--by", KIND)
    runs, _, _, trials = stored(real_study)
    v = by_point(runs)
    (effect,) = study["effects"]
    assert study["baselines"][KIND] == {"value": "attention", "reason": "the standard value"}
    # pairs: same channel mixer and seed; in the order of the search points (trial numbers), then seeds
    order = [t.search_params[CHANNEL] for t in sorted(trials, key=lambda t: t.number) if t.search_params[KIND] == "mlp"]
    diffs = [v["mlp", ch][s] - v["attention", ch][s] for ch in order for s in (0, 1)]
    assert effect["value"] == "mlp" and effect["baseline"] == "attention" and effect["paired"] is True
    assert effect["method"] == "paired bootstrap" and effect["n_pairs"] == 4 and effect["n_configs"] == 2
    assert effect["diff"] == pytest.approx(statistics.fmean(diffs), rel=1e-12)
    # the interval, as documented in deconstruct.report._stats.paired_bootstrap_ci
    d = np.asarray(diffs)
    idx = np.random.default_rng(0).integers(0, 4, size=(5000, 4))
    lo, hi = np.percentile(d[idx].mean(axis=1), [2.5, 97.5])
    assert (effect["ci_low"], effect["ci_high"]) == pytest.approx((lo, hi), rel=1e-12)
    assert min(diffs) <= effect["ci_low"] <= effect["diff"] <= effect["ci_high"] <= max(diffs)
    base = statistics.fmean(v["attention", ch][s] for ch in ("mlp", "none") for s in (0, 1))
    assert effect["relative"] == pytest.approx(statistics.fmean(diffs) / base)

    rows = list(csv.DictReader(io.StringIO(report(real_study, "--by", KIND, "--format", "csv"))))
    assert [(r["axis"], r["value"]) for r in rows] == [(KIND, "mlp")]
    assert float(rows[0]["diff"]) == effect["diff"]


def test_markdown_and_csv_carry_the_same_numbers(real_study):
    configs = report_json(real_study)["configurations"]
    rows = list(csv.DictReader(io.StringIO(report(real_study, "--format", "csv"))))
    assert len(rows) == len(configs) == 4
    for row, c in zip(rows, configs, strict=True):
        assert row["study"] == real_study["name"] and row["config_hash"] == c["config_hash"]
        for key in ("mean", "ci_low", "ci_high", "std", "tokens_per_second", "wall_seconds"):
            assert float(row[key]) == c[key]  # full precision
        for key in ("n", "params", "flops_per_token", "rank"):
            assert int(row[key]) == c[key]
        assert (row[KIND], row[CHANNEL], row["seeds"]) == (c[KIND], c[CHANNEL], "0 1")
        assert int(row["completed"]) == 2 and int(row["failed"]) == 0
    md = report(real_study, "--format", "markdown")
    assert md.startswith(f"# deconstruct report: {real_study['name']}")
    for c in configs:
        line = next(ln for ln in md.splitlines() if c["configuration"] in ln)
        assert f"{c['mean']:.4f} ± {c['ci_high'] - c['mean']:.4f}" in line and "| 2 |" in line
    assert "Student-t" in md and "Parameter importances" in md and "## Attention diagnostics" in md


def test_diagnostics_for_attention_configurations_only(real_study):
    study = report_json(real_study)
    runs, _, diagnostics, _ = stored(real_study)
    for c in study["configurations"]:
        d = c["diagnostics"]
        mine = [r for r in runs if r.config_hash == c["config_hash"]]
        if c[KIND] == "mlp":
            assert d["layers"] == [] and d["reason"] == "no attention map (token-wise mixer)"
            assert all(not diagnostics.get(r.id) for r in mine)
            continue
        (layer,) = d["layers"]
        assert (layer["layer"], layer["mixer"], layer["n"], layer["heads"]) == (1, "attention", 2, 2)
        assert set(layer["mean"]) >= {"entropy", "sink", "concentration", "local_0", "head_diversity"}
        for name, got in layer["mean"].items():
            want = [val for r in mine for (ly, _, n, val) in diagnostics[r.id] if (ly, n) == (1, name)]
            assert got == pytest.approx(statistics.fmean(want), rel=1e-12), name
    assert study["diagnostics"]["recorded"] is True


def test_importances_over_the_four_completed_trials(real_study):
    import optuna

    imp = report_json(real_study)["importances"]
    assert imp["n_trials"] == 4 and imp["values"] is not None and set(imp["values"]) == {KIND, CHANNEL}
    assert sum(imp["values"].values()) == pytest.approx(1.0)
    ostudy = optuna.load_study(study_name=real_study["name"], storage=real_study["url"])
    assert imp["values"] == pytest.approx(optuna.importance.get_param_importances(ostudy))
