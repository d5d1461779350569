"""The example third-party plugin (plugins/deconstruct-mixit), pip-installed, through the real CLI; and
each failure mode as one line on stderr, never a crash."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from _support import cli

SPEC = """\
name: mixit-tiny
task: {name: lm, corpus: stdlib, seq_len: 32, max_bytes: 200000}
model:
  d_model: 32
  layers: 2
  heads: 4
  mixer: {kind: mixit, c: 1.0}
train: {steps: 3, batch_size: 4, eval_every: 3, eval_batches: 1, device: cpu}
"""


@pytest.fixture
def mixit(mixit_site: Path, on_path) -> Path:
    """The pip-installed example plugin, visible to this process's registry."""
    on_path(mixit_site)
    return mixit_site


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    path = tmp_path / "mixit.yaml"
    path.write_text(SPEC)
    return path


# -- the installed example plugin --------------------------------------------------------------------------
def test_variants_list_shows_the_plugin_mixer(mixit) -> None:
    result = cli("variants", "list", "--kind", "mixer", "--format", "json")
    assert result.exit_code == 0, result.output
    (row,) = [r for r in json.loads(result.stdout) if r["name"] == "mixit"]
    assert (row["plugin"], row["plugin_version"], row["builtin"]) == ("mixit", "0.1.0", False)
    assert row["options"]["c"]["default"] == 1.0 and row["options"]["sigma"]["type"] == "float | None"
    assert "2506.01115" in row["paper"] and row["patterns"] == ["causal_self"]
    table = cli("variants", "list")
    assert table.exit_code == 0 and "mixit 0.1.0" in table.stdout and "c=1.0, sigma=None" in table.stdout


def test_plugins_list_shows_name_version_hooks(mixit) -> None:
    result = cli("plugins", "list", "--format", "json")
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    assert row["name"] == "mixit" and row["version"] == "0.1.0" and row["package"] == "deconstruct-mixit"
    assert row["hooks"] == ["register_commands", "register_mixers"] and row["status"] == "ok"
    everything = json.loads(cli("plugins", "list", "--all", "--format", "json").stdout)
    assert {"deconstruct.builtin.attention", "mixit"} <= {r["name"] for r in everything}
    assert "mixit" in cli("plugins", "list").stdout


def test_spec_check_and_train_with_the_plugin_mixer(mixit, spec_file: Path) -> None:
    result = cli("spec", "check", str(spec_file), "--format", "json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert [layer["base"] for layer in info["layers"]] == ["mixit", "mixit"]
    assert info["params"] > 0 and info["flops_per_token"] > 0
    result = cli("spec", "check", str(spec_file), "--set", "model.mixer.c=0.5", "--set", "model.layout=hybrid")
    assert result.exit_code == 0 and "c=0.5" in result.stdout
    result = cli("train", str(spec_file), "--format", "json")
    assert result.exit_code == 0, result.output
    run = json.loads(result.stdout)
    assert run["steps"] == 3 and math.isfinite(run["val_loss"])


def test_plugin_option_errors_name_the_yaml_line(mixit, spec_file: Path) -> None:
    spec_file.write_text(SPEC.replace("c: 1.0", "cc: 1.0"))
    result = cli("spec", "check", str(spec_file))
    assert result.exit_code == 2
    assert "mixit.yaml:7: model.mixer.cc: unknown key 'cc' (did you mean 'c'?" in result.stderr


def test_plugin_command_through_the_cli(mixit) -> None:
    result = cli("mixit", "show-map", "--seq-len", "4", "--json")
    assert result.exit_code == 0, result.output
    assert [round(s, 6) for s in json.loads(result.stdout)["row_sums"]] == [1.0] * 4


def test_example_plugin_own_tests_pass_when_installed(mixit_site: Path, tmp_path: Path) -> None:
    """The plugin's tests (conformance suite included) run as its author would, against the installed copy."""
    import os

    tests = mixit_site.parent / "src" / "tests"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(mixit_site), os.environ.get("PYTHONPATH")]))}
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tests)],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert " passed" in out.stdout and "failed" not in out.stdout


# -- failure modes, through the real command line (one line on stderr, exit code 0 unless the spec needs it) --
def test_broken_plugin_cli_still_works_and_names_it(cli, mixit_site: Path, make_dist) -> None:
    bad = make_dist("bad-plugin", {"badplug": "broken_at_import"}, ("broken_at_import",))
    result = cli.run("variants", "list", "--kind", "mixer", paths=(mixit_site, bad))
    assert result.returncode == 0, result.stderr
    assert "mixit" in result.stdout
    warnings = result.stderr.strip().splitlines()
    assert len(warnings) == 1 and warnings[0].startswith("warning: plugin 'badplug' is disabled: failed to import")
    listed = cli.run("plugins", "list", paths=(mixit_site, bad))
    assert listed.returncode == 0 and "badplug" in listed.stdout and "disabled" in listed.stdout
    assert all(len(line) <= 100 for line in listed.stdout.splitlines())


def test_name_collision_is_one_line_naming_both(cli, make_dist) -> None:
    a = make_dist("pa", {"ema_a": "ema_a"}, ("ema_a",))
    b = make_dist("pb", {"ema_b": "ema_b"}, ("ema_b",))
    result = cli.run("variants", "list", "--kind", "task", paths=(a, b))
    assert result.returncode == 0
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("warning: mixer 'ema' is registered by 'ema_a' and by 'ema_b'; neither is used")


def test_unknown_mixer_in_a_spec_suggests_the_nearest(cli, mixit_site: Path, spec_file: Path) -> None:
    spec_file.write_text(SPEC.replace("kind: mixit", "kind: mixitt"))
    result = cli.run("spec", "check", str(spec_file), paths=(mixit_site,))
    assert result.returncode == 2 and result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {spec_file}:7: model.mixer.kind: unknown mixer 'mixitt': did you mean 'mixit'?")
    assert {"attention", "mixit", "mlp"} <= set(line.split("registered: ")[1].split(", "))


def test_load_plugins_env_empty_loads_none(cli, mixit_site: Path) -> None:
    result = cli.run("variants", "list", "--kind", "mixer", "--format", "json", paths=(mixit_site,), env={"DECONSTRUCT_LOAD_PLUGINS": ""})
    assert result.returncode == 0 and "mixit" not in {r["name"] for r in json.loads(result.stdout)}


def test_tables_fit_100_columns(cli, mixit_site: Path) -> None:
    result = cli.run("variants", "list", paths=(mixit_site,))
    assert result.returncode == 0 and "mixit" in result.stdout
    assert max(len(line) for line in result.stdout.splitlines()) <= 100
