"""The CLI end to end through typer's CliRunner: spec check, train, and the one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from _support import cli

STUDIES = Path(__file__).resolve().parents[2] / "studies"


def test_cli_start_up_imports_no_torch():
    code = "import sys; from deconstruct.cli import build_app; build_app(); print('torch' in sys.modules, 'optuna' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_help_lists_commands_with_examples():
    res = cli("--help")
    assert res.exit_code == 0
    for cmd in ("spec", "train", "variants", "plugins"):
        assert cmd in res.stdout
    assert "Examples" in cli("spec", "check", "--help").stdout


def test_every_commands_help_uses_one_metavar_convention():
    """Flags show no type (no ``<bool>``), values an upper-case name or their choices; never typer's ``<str>``."""
    import re

    import typer

    from deconstruct.cli import build_app

    def paths(command, path=()):
        yield list(path)
        for name, sub in getattr(command, "commands", {}).items():
            yield from paths(sub, (*path, name))

    seen = 0
    for path in paths(typer.main.get_command(build_app())):
        res = cli(*path, "--help", env={"COLUMNS": "200"})
        assert res.exit_code == 0, (path, res.output)
        rows = [ln for ln in res.stdout.splitlines() if re.match(r"\W*--[a-z]", ln.strip("│ "))]
        seen += len(rows)
        assert not [r for r in rows if re.search(r"<[a-z| ]+>", r)], (path, rows)
        help_row = next(r for r in rows if "--help" in r)
        assert re.search(r"--help\s+Show this message", help_row), help_row
    assert seen > 50  # every command's options were looked at


def test_spec_check_quickstart_table_and_json():
    res = cli("spec", "check", str(STUDIES / "quickstart.yaml"))
    assert res.exit_code == 0, res.output
    assert "parameters" in res.stdout and "FLOPs/token" in res.stdout
    res = cli("spec", "check", str(STUDIES / "quickstart.yaml"), "--format", "json", "--set", "model.layout=hybrid", "--set", "model.mixer=mlp")
    data = json.loads(res.stdout)
    assert data["name"] == "quickstart"
    assert [layer["mixer"] for layer in data["layers"]] == ["mlp", "attention", "mlp", "attention"]
    assert set(data["layers"][0]) >= {"index", "mixer", "options"}
    assert data["params"] > 0 and data["flops_per_token"] > 0


def test_train_json(tiny_file):
    res = cli("train", str(tiny_file()), "--format", "json", "--seed", "0")
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    for key in ("val_loss", "params", "tokens", "tokens_per_second", "train_seconds", "device", "bits_per_byte"):
        assert key in data
    again = json.loads(cli("train", str(tiny_file()), "--format", "json", "--seed", "0").stdout)
    assert abs(again["val_loss"] - data["val_loss"]) < 1e-6


def test_train_quickstart_text_with_shrink_overrides():
    shrink = ["model.d_model=16", "train.steps=2", "task.max_bytes=200000", "train.eval_every=2", "train.eval_batches=1",
              "task.seq_len=16"]
    res = cli("train", str(STUDIES / "quickstart.yaml"), "--format", "text", *(a for s in shrink for a in ("--set", s)))
    assert res.exit_code == 0, res.output
    assert "val_loss" in res.stdout


def test_train_skip_relaxed(tiny_file, tiny):
    tiny["model"].update(layout="hybrid", mixer="mlp")
    data = json.loads(cli("train", str(tiny_file(tiny)), "--format", "json", "--skip-relaxed").stdout)
    assert "skip_block_val_loss" in data and data["skip_block_val_loss"] != data["val_loss"]
    assert "skip_mixer_val_loss" in data and data["skip_mixer_val_loss"] != data["skip_block_val_loss"]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("name: x\nmodel:\n  lyers: 2\n", "s.yaml:3: model.lyers: unknown key 'lyers' (did you mean 'layers'?"),
        ("name: x\nmodel: [1\n", "s.yaml:3: invalid YAML"),
        ("name: x\ntrain:\n  batch_size: 0\n", "s.yaml:3: train.batch_size: input should be greater than or equal to 1"),
        ("name: x\nmodel:\n  mixer: attn\n", ("model.mixer.kind: unknown mixer 'attn'", "registered:")),
        ("name: x\nmodel:\n  d_model: 30\n  heads: 4\n", "s.yaml:4: model.heads: d_model (30) must be divisible by heads (4)"),
        ("name: x\ntask: {name: lm, seq_len: 1}\n", "s.yaml:2: task.seq_len: input should be greater than or equal to 2"),
        ("name: x\ntrain:\n  steps: ten\n", "s.yaml:3: train.steps: input should be a valid integer"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path, text, expected):
    f = tmp_path / "s.yaml"
    f.write_text(text)
    res = cli("spec", "check", str(f))
    assert res.exit_code == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    for part in (expected,) if isinstance(expected, str) else expected:
        assert part in lines[0]
    assert "Traceback" not in res.output


def test_unreadable_file_exit_2(tmp_path):
    res = cli("train", str(tmp_path / "nope.yaml"))
    assert res.exit_code == 2 and "no such file" in res.stderr


def test_non_finite_loss_exit_1(tiny_file):
    res = cli("train", str(tiny_file()), "--set", "train.lr=1e12", "--set", "train.grad_clip=0", "--set", "train.steps=30",
                 "--set", "train.warmup_steps=0")
    assert res.exit_code == 1 and "non-finite" in res.stderr


def test_debug_shows_traceback(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("name: x\nmodel:\n  lyers: 2\n")
    proc = cli.run("spec", "check", f, env={"DECONSTRUCT_DEBUG": "1"})
    assert proc.returncode != 0 and "Traceback" in proc.stderr
    proc = cli.run("spec", "check", f, env={"DECONSTRUCT_DEBUG": ""})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1


def test_bench_attention_json_rows_agree_with_reference():
    res = cli("bench", "attention", "-T", "16", "-b", "eager", "-b", "sdpa", "--repeats", "1", "--heads", "2", "--head-dim", "16",
                 "--format", "json")
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert {r["backend"] for r in rows} == {"eager", "sdpa"}
    for r in rows:
        assert r["ms_fwd_bwd"] > 0 and r["max_abs_err_vs_reference"] < 1e-4


def test_progress_bars_show_steps_loss_throughput_and_trials(tmp_path):
    """Rich progress on stderr (forced on without a terminal by DECONSTRUCT_PROGRESS=1); data stays on stdout."""
    env = {"DECONSTRUCT_PROGRESS": "1", "COLUMNS": "160"}
    shrink = ["--set", "model.d_model=16", "--set", "train.steps=6", "--set", "train.eval_every=3", "--set",
              "task.max_bytes=200000", "--set", "task.seq_len=16", "--set", "train.seeds=[0]"]
    quickstart = str(STUDIES / "quickstart.yaml")
    proc = cli.run("train", quickstart, *shrink, "--format", "json", env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    json.loads(proc.stdout)  # stdout is only the JSON document
    bar = proc.stderr.strip().splitlines()[-1]
    assert "6/6" in bar and "loss" in bar and "val" in bar and "tok/s" in bar
    proc = cli.run("study", "run", quickstart, *shrink, "--storage", f"sqlite:///{tmp_path / 's.db'}", env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "trials" in proc.stderr and "4/4" in proc.stderr and "best" in proc.stderr
    assert f"next: deconstruct report quickstart --storage sqlite:///{tmp_path / 's.db'}" in proc.stderr  # runnable as printed


def test_version_prints_the_version_and_exits_0():
    from deconstruct import __version__

    res = cli("--version")
    assert res.exit_code == 0 and res.stdout.strip() == __version__



def test_bench_attention_variants_json_times_each_path_once_and_says_why_a_backend_is_missing():
    res = cli("bench", "attention", "-v", "window", "-v", "channel_attention", "-v", "approximate", "-T", "32",
                 "-b", "auto", "-b", "sdpa", "-b", "triton", "--repeats", "1", "--d-model", "16", "--heads", "2",
                 "--format", "json")
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    timed = {(r["variant"], r["backend"]): r["runs"] for r in rows if r["error"] is None}
    assert timed[("window", "sdpa")] == "dense-mask"  # T = 32 with w = 16: the blocked path does not pay
    assert ("channel_attention", "auto") in timed  # non-causal only: timed in the cloze task
    # approximate: on the CPU every backend runs the same chunked path; with CUDA, auto (and triton, the same
    # path, not timed again) run the Taylor kernel and eager the chunked form
    assert [b for (v, b) in timed if v == "approximate"] == (["auto", "eager"] if torch.cuda.is_available() else ["auto"])
    assert all(r["ms_fwd_bwd"] > 0 for r in rows if r["error"] is None)
    if not torch.cuda.is_available():
        why = {r["variant"]: r["error"] for r in rows if r["backend"] == "triton"}
        # window and approximate have a triton path, which needs CUDA; the others ignore the request and run as auto
        assert set(why) == {"window", "approximate"}
        assert "\n" not in why["window"] and "CUDA" in why["window"]
