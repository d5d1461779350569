"""`deconstruct report --metric NAME` on a study the real runner wrote (fixture ``real_study``): every table
reports another per-run value (a dc_run column or a key of the run's ``metrics``), recomputed here from
``Store(url).runs(name)``."""

from __future__ import annotations

import json
import math
import statistics

import pytest
from _support import cli
from scipy import stats

from deconstruct.store import Store

KIND = "model.mixer.kind"


def invoke(real_study, *args):
    return cli("report", real_study["name"], *args, "--storage", real_study["url"])


def report_json(real_study, *args) -> dict:
    res = invoke(real_study, *args, "--format", "json")
    assert res.exit_code == 0, res.stderr + res.stdout
    (study,) = json.loads(res.stdout)["studies"]
    return study


def stored_runs(real_study):
    store = Store(real_study["url"], create=False)
    runs = store.runs(real_study["name"])
    store.close()
    return runs


@pytest.mark.parametrize("metric", ["bits_per_byte", "skip_block_val_loss"])
def test_configuration_means_for_a_metric_equal_a_recomputation_from_the_store(real_study, metric):
    study = report_json(real_study, "--metric", metric)
    runs = stored_runs(real_study)
    assert study["objective"] == metric and study["metric"] == metric and study["direction"] == "minimize"
    assert study["objectives"] == ["val_loss"]  # the study's own objectives are unchanged
    assert any(metric in n and "importances" in n for n in study["notes"])
    configs = study["configurations"]
    assert len(configs) == 4 and [c["rank"] for c in configs] == [1, 2, 3, 4]
    assert [c["mean"] for c in configs] == sorted(c["mean"] for c in configs)  # minimize: best first
    t975 = float(stats.t.ppf(0.975, 1))
    for c in configs:
        mine = sorted((r for r in runs if r.config_hash == c["config_hash"]), key=lambda r: r.seed)
        vals = [float(r.metrics[metric]) for r in mine]
        assert len(vals) == 2 and c["values"] == vals
        mean, sd = statistics.fmean(vals), statistics.stdev(vals)
        assert c["mean"] == pytest.approx(mean, rel=1e-12)
        assert c["ci_low"] == pytest.approx(mean - t975 * sd / math.sqrt(2), rel=1e-12)
        assert c["ci_high"] == pytest.approx(mean + t975 * sd / math.sqrt(2), rel=1e-12)
        assert c["curve"]["metric"] == "val_loss"  # no per-step curve of this metric: val_loss, as before


def test_by_effects_use_the_metric(real_study):
    study = report_json(real_study, "--metric", "bits_per_byte", "--by", KIND)
    runs = stored_runs(real_study)
    v = {(r.search_params[KIND], r.search_params["model.channel_mixer"], r.seed): r.metrics["bits_per_byte"]
         for r in runs}
    (effect,) = study["effects"]
    diffs = [v["mlp", ch, s] - v["attention", ch, s] for ch in ("mlp", "none") for s in (0, 1)]
    assert effect["diff"] == pytest.approx(statistics.fmean(diffs), rel=1e-12)


def test_table_names_the_metric(real_study):
    res = invoke(real_study, "--metric", "skip_block_val_loss")
    assert res.exit_code == 0, res.stderr + res.stdout
    assert "skip_block_val_loss" in res.stdout and "reporting skip_block_val_loss (minimize)" in res.stdout


def test_unknown_metric_exits_2_listing_the_metrics_the_runs_have(real_study):
    res = invoke(real_study, "--metric", "no_such_metric")
    assert res.exit_code == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "no_such_metric" in lines[0]
    assert "bits_per_byte" in lines[0] and "skip_block_val_loss" in lines[0] and "val_loss" in lines[0]
