"""A plugin's token-wise mixer is reported like the built-in ``mlp``: the fixture plugin registers ``pointwise``
with ``mixes_tokens=False`` (and ``ema``, which mixes tokens but has no attention map to record), and the
report, which names neither, explains their missing attention diagnostics from the registry's flag alone."""

from __future__ import annotations

from pathlib import Path

from _support import tiny_spec

NO_MAP = "no attention map (token-wise mixer)"


def test_a_plugin_token_wise_mixer_is_reported_like_mlp(make_dist, on_path, tiny_file, cli, tmp_path: Path) -> None:
    on_path(make_dist("deconstruct-ema", {"ema": "ema_a"}, ("ema_a",)))
    spec = tiny_file(tiny_spec(name="tokenwise", layers=2, layout="hybrid", study={"sampler": "grid"},
                               search={"model.mixer.kind": ["mlp", "pointwise", "ema", "attention"]}))
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    run = cli("study", "run", spec, "--storage", url)
    assert run.exit_code == 0, run.output
    (study,) = cli.json("report", "tokenwise", "--storage", url)["studies"]
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
