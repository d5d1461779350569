"""A study and its report with a third-party mixer: the pip-installed example plugin (deconstruct-mixit)
searched against built-in attention through the real command line, in a fresh interpreter. Every run row
records the plugins that provided it (issue 6), and the report reads the plugin's runs like any other."""

from __future__ import annotations

import json
import math
from pathlib import Path

SPEC = """\
name: mixit-study
task: {name: lm, corpus: stdlib, seq_len: 16, max_bytes: 200000}
model: {d_model: 16, layers: 2, heads: 2}
train: {steps: 3, batch_size: 4, eval_every: 3, eval_batches: 1, seeds: [0], device: cpu}
study: {sampler: grid}
search:
  model.mixer.kind: [attention, mixit]
"""


def test_study_and_report_with_a_plugin_mixer(mixit_site: Path, tmp_path: Path, cli) -> None:
    from deconstruct import __version__
    from deconstruct.store import Store

    spec = tmp_path / "study.yaml"
    spec.write_text(SPEC)
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    env = {"OMP_NUM_THREADS": "1"}  # tiny models on shared cores

    run = cli.run("study", "run", spec, "--storage", url, paths=(mixit_site,), env=env, timeout=300)
    assert run.returncode == 0, run.stderr

    runs = Store(url).runs("mixit-study")
    assert sorted(r.search_params["model.mixer.kind"] for r in runs) == ["attention", "mixit"]
    assert all(r.status == "completed" for r in runs)
    for r in runs:
        names = {p["name"]: p for p in r.plugins}
        sources = {p["name"]: p.pop("source") for p in r.plugins}  # the code behind the run, not just versions
        assert sources["deconstruct.builtin.tasks"] == r.versions["deconstruct_source"] != ""
        assert len(set(sources.values())) == (2 if "mixit" in sources else 1)  # the plugin's own files differ
        assert names["deconstruct.builtin.tasks"] == {"name": "deconstruct.builtin.tasks", "version": __version__,
                                                      "provides": ["task:lm"]}
        if r.search_params["model.mixer.kind"] == "mixit":  # the name and version the registry reports
            assert names["mixit"] == {"name": "mixit", "version": "0.1.0", "provides": ["mixer:mixit"]}
            assert "deconstruct.builtin.attention" not in names
        else:
            assert "mixit" not in names
            assert names["deconstruct.builtin.attention"]["version"] == __version__

    report = cli.run("report", "mixit-study", "--storage", url, "--format", "json", paths=(mixit_site,), env=env)
    assert report.returncode == 0, report.stderr
    data = json.loads(report.stdout)
    (study,) = data["studies"]
    rows = {c["model.mixer.kind"]: c for c in study["configurations"]}
    assert set(rows) == {"attention", "mixit"}
    for row in rows.values():
        assert row["status"] == {"completed": 1, "pruned": 0, "failed": 0, "running": 0} and row["n"] == 1
        assert math.isfinite(row["mean"])
    # the report names the code behind each configuration: the third-party plugin, its version and source
    (mixit_code,) = rows["mixit"]["code"]
    assert mixit_code["plugins"].startswith("channel_mixers ") and "mixit 0.1.0 (source " in mixit_code["plugins"]
    assert mixit_code["deconstruct"].startswith(__version__)
    (std_code,) = rows["attention"]["code"]
    assert "mixit" not in std_code["plugins"] and f"attention {__version__}" in std_code["plugins"]
