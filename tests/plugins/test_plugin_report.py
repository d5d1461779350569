"""A plugin's token-wise mixer is reported like the built-in ``mlp``: the fixture plugin registers ``pointwise``
with ``mixes_tokens=False`` (and ``ema``, which mixes tokens but has no attention map to record), and the
report, which names neither, explains their missing attention diagnostics from the registry's flag alone."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from deconstruct.cli import build_app

SPEC = """\
name: tokenwise
task: {name: lm, corpus: stdlib, seq_len: 16, max_bytes: 200000}
model: {d_model: 16, layers: 2, heads: 2, layout: hybrid}
train: {steps: 2, batch_size: 4, eval_every: 2, eval_batches: 1, seeds: [0], device: cpu}
study: {sampler: grid}
search:
  model.mixer.kind: [mlp, pointwise, ema, attention]
"""
NO_MAP = "no attention map (token-wise mixer)"


def test_a_plugin_token_wise_mixer_is_reported_like_mlp(make_dist, on_path, tmp_path: Path) -> None:
    on_path(make_dist("deconstruct-ema", {"ema": "ema_a"}, ("ema_a",)))
    spec = tmp_path / "study.yaml"
    spec.write_text(SPEC)
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    app, runner = build_app(), CliRunner()
    run = runner.invoke(app, ["study", "run", str(spec), "--storage", url])
    assert run.exit_code == 0, run.stderr

    report = runner.invoke(app, ["report", "tokenwise", "--storage", url, "--format", "json"])
    assert report.exit_code == 0, report.stderr
    (study,) = json.loads(report.stdout)["studies"]
    diag = {c["model.mixer.kind"]: c["diagnostics"] for c in study["configurations"]}
    # hybrid at 2 layers: layer 1 takes the searched mixer, layer 2 keeps attention
    for name in ("mlp", "pointwise"):
        assert [x["layer"] for x in diag[name]["layers"]] == [2]
        assert diag[name]["missing"] == [{"layer": 1, "mixer": name, "reason": NO_MAP}]
    # ema mixes tokens (registered without the flag): its missing map is a gap in the record, not a property
    assert diag["ema"]["missing"] == [{"layer": 1, "mixer": "ema", "reason": "no diagnostics recorded for its runs"}]
    assert [x["layer"] for x in diag["attention"]["layers"]] == [1, 2] and diag["attention"]["missing"] == []
    assert study["baselines"]["model.mixer.kind"] == {"value": "attention", "reason": "the standard value"}
    assert any(note.startswith(f"Not shown, {NO_MAP}: layer 1 (mlp) of ") and "layer 1 (pointwise) of" in note
               for note in study["diagnostics"]["notes"])
