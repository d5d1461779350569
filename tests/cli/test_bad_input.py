"""Bad input and environment faults, table-driven: each gives ONE line on stderr and exit 2 (the input) or 1
(the environment: storage, memory, files), never a traceback; what the store held is still there."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from deconstruct.cli import build_app

TINY = {
    "name": "bad",
    "task": {"name": "lm", "corpus": "stdlib", "seq_len": 16, "max_bytes": 200_000},
    "model": {"d_model": 16, "layers": 2, "heads": 2},
    "train": {"steps": 2, "batch_size": 2, "eval_every": 2, "eval_batches": 1, "seeds": [0]},
}

LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi", strict=True)
)


def spec_text(search: dict | None = None, study: dict | None = None, **top) -> str:
    data = copy.deepcopy(TINY)
    if search is not None:
        data["search"] = search
    if study is not None:
        data["study"] = study
    data.update(top)
    return yaml.safe_dump(data, sort_keys=False)


# (id, spec file text or None, arguments ({spec}: the spec file, {db}: a fresh store URL), exit code, words)
CASES = [
    # YAML
    ("billion-laughs", LAUGHS, ["spec", "check", "{spec}"], 2, "expands to more than"),
    ("recursive-alias", "a: &a [*a]\n", ["spec", "check", "{spec}"], 2, "refers to itself"),
    ("deep-nesting", "x: " + "[" * 20000 + "]" * 20000 + "\n", ["spec", "check", "{spec}"], 2, "nests deeper than"),
    ("python-tag", "name: x\nmodel: !!python/name:os.system\n", ["spec", "check", "{spec}"], 2, "spec.yaml:2"),
    ("int-tag", "name: x\ntrain: {steps: !!int abc}\n", ["spec", "check", "{spec}"], 2, "cannot read 'abc' as int"),
    ("list-as-key", "name: x\n? [a, b]\n: 1\n", ["spec", "check", "{spec}"], 2, "mapping key must be a plain value"),
    ("duplicate-key", "name: x\ntrain:\n  steps: 3\n  steps: 4\n", ["spec", "check", "{spec}"], 2, "spec.yaml:4: train.steps: duplicate key"),
    ("infinite-lr", "name: x\ntrain:\n  lr: .inf\n", ["train", "{spec}"], 2, "spec.yaml:3: train.lr: '.inf' is not a finite number"),
    ("empty-spec", "", ["train", "{spec}"], 2, "the spec is empty"),
    ("comment-only-spec", "# nothing here\n", ["study", "run", "{spec}", "--storage", "{db}"], 2, "the spec is empty"),
    ("set-index-out-of-range", spec_text(), ["spec", "check", "{spec}", "--set", "train.seeds.5=3"], 2,
     "--set: train.seeds.5: index 5 is out of range"),
    ("set-infinite", spec_text(), ["spec", "check", "{spec}", "--set", "train.lr=.nan"], 2, "not a finite number"),
    ("missing-spec", None, ["spec", "check", "{missing}"], 2, "no such file"),
    ("spec-is-a-directory", None, ["train", "{dir}"], 2, "is a directory"),
    ("bracketed-name-kept", spec_text(), ["spec", "check", "{spec}", "--set", "model.mixer.kind=[bold]x"], 2,
     "[bold]x"),
    ("name-too-long", spec_text(), ["spec", "check", "{spec}", "--set", "name=" + "n" * 300], 2, "at most 200 characters"),
    # the search space, refused by `spec check` exactly as by `study run`
    ("misspelt-searched-mixer", spec_text({"model.mixer.kind": ["attention", "talking_head"]}),
     ["spec", "check", "{spec}"], 2, "search.model.mixer.kind: the value 'talking_head' gives no valid spec"),
    ("misspelt-searched-mixer-run", spec_text({"model.mixer.kind": ["attention", "talking_head"]}),
     ["study", "run", "{spec}", "--storage", "{db}"], 2, "the value 'talking_head'"),
    ("empty-search-list", spec_text({"model.layout": []}), ["spec", "check", "{spec}"], 2, "at least one value"),
    ("unknown-search-path", spec_text({"model.mixr.kind": ["mlp"]}), ["spec", "check", "{spec}"], 2, "did you mean model.mixer?"),
    ("negative-log-range", spec_text({"train.lr": {"low": -1, "high": 1, "log": True}}, {"sampler": "tpe"}),
     ["spec", "check", "{spec}"], 2, "low > 0 must hold for log=True"),
    ("continuous-range-grid", spec_text({"train.lr": {"low": 1e-4, "high": 1e-2}}), ["spec", "check", "{spec}"], 2,
     "need a finite space"),
    ("low-above-high", spec_text({"train.lr": {"low": 1, "high": 0.1}}), ["spec", "check", "{spec}"], 2,
     "low (1.0) must be below high (0.1)"),
    ("scalar-search-entry", spec_text({"train.lr": 3}), ["spec", "check", "{spec}"], 2, "a list of values or a range"),
    ("option-no-mixer-takes", spec_text({"model.mixer.kv_heads": [1, 2]}, model={**TINY["model"], "mixer": "mlp"}),
     ["spec", "check", "{spec}"], 2, "takes the option 'kv_heads'"),
    ("invalid-combination", spec_text({"model.d_model": [16, 18], "model.heads": [2, 3]}), ["spec", "check", "{spec}"], 2,
     "the configuration model.d_model=16, model.heads=3 gives no valid spec"),
    ("objective-the-task-does-not-measure", spec_text(study={"objective": "accuracy", "direction": "maximize"}),
     ["spec", "check", "{spec}"], 2, "spec.yaml:19: study.objective: unknown objective 'accuracy' for task 'lm'"),
    # storage
    ("junk-sqlite-list", None, ["study", "list", "--storage", "{junk}"], 1, "is not a SQLite database"),
    ("junk-sqlite-run", spec_text(), ["study", "run", "{spec}", "--storage", "{junk}"], 1, "is not a SQLite database"),
    ("junk-sqlite-report", None, ["report", "x", "--storage", "{junk}"], 1, "is not a SQLite database"),
    ("truncated-sqlite", None, ["study", "show", "x", "--storage", "{truncated}"], 1, "damaged"),
    ("postgres-down", None, ["study", "list", "--storage", "postgresql+psycopg://u@127.0.0.1:1/db"], 1, "no database server answers"),
    ("storage-is-a-directory", None, ["study", "list", "--storage", "sqlite:///{dir}"], 1, "is a directory"),
    ("bad-storage-url", None, ["study", "list", "--storage", "nonsense://"], 2, "storage"),
]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """A junk file, a truncated SQLite file (the first pages of a real store) and a directory."""
    from deconstruct.store import Store

    root = tmp_path_factory.mktemp("bad")
    (root / "junk.db").write_bytes(b"this is not a database\n" * 100)
    good = root / "good.db"
    Store(f"sqlite:///{good}").close()
    data = good.read_bytes()
    (root / "truncated.db").write_bytes(data[: len(data) // 2] if len(data) > 8192 else data[:5000])
    (root / "folder").mkdir()
    return {"root": root, "junk": root / "junk.db", "truncated": root / "truncated.db", "dir": root / "folder"}


@pytest.mark.parametrize(("text", "argv", "code", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line(text, argv, code, words, files, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("DECONSTRUCT_DEBUG", "0")
    spec = tmp_path / "spec.yaml"
    if text is not None:
        spec.write_text(text)
    junk_before = files["junk"].read_bytes()
    values = {"spec": str(spec), "db": f"sqlite:///{tmp_path / 'new.db'}", "junk": f"sqlite:///{files['junk']}",
              "truncated": f"sqlite:///{files['truncated']}", "dir": str(files["dir"]),
              "missing": str(tmp_path / "missing.yaml")}
    args = list(argv)
    for key, value in values.items():
        args = [a.replace("{" + key + "}", value) for a in args]
    result = CliRunner().invoke(build_app(), args)
    lines = [ln for ln in result.stderr.splitlines() if ln.strip() and not ln.startswith("warning: ")]
    assert result.exit_code == code, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert words in lines[0], lines[0]
    assert files["junk"].read_bytes() == junk_before  # a faulty store is never "repaired" by overwriting it
    assert not (tmp_path / "new.db").exists() or code != 2  # refused input creates no store


@pytest.mark.parametrize("command", [["study", "list"], ["report", "x"], ["study", "run", "{spec}"]])
def test_a_missing_postgresql_database_is_one_line(command, tmp_path, monkeypatch) -> None:
    """A server that answers but has no such database: one line naming the storage and the database, exit 1."""
    server = os.environ.get("DECONSTRUCT_TEST_POSTGRES")
    if not server:
        if os.environ.get("CI"):
            pytest.fail("CI is set but DECONSTRUCT_TEST_POSTGRES is not: .ci/run must start PostgreSQL")
        pytest.skip("set DECONSTRUCT_TEST_POSTGRES to a PostgreSQL server URL")
    from sqlalchemy.engine import make_url

    monkeypatch.setenv("DECONSTRUCT_DEBUG", "0")
    (tmp_path / "spec.yaml").write_text(spec_text())
    url = make_url(server).set(database="dc_no_such_database").render_as_string(hide_password=False)
    args = [a.replace("{spec}", str(tmp_path / "spec.yaml")) for a in command] + ["--storage", url]
    result = CliRunner().invoke(build_app(), args)
    lines = [ln for ln in result.stderr.splitlines() if ln.strip() and not ln.startswith("warning: ")]
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert len(lines) == 1 and lines[0].startswith("error: storage postgresql"), result.stderr
    assert 'database "dc_no_such_database" does not exist' in lines[0] and ":***@" in lines[0]  # password hidden


def test_markup_in_stored_values_is_shown_as_text(tmp_path) -> None:
    """A searched value and an error text with rich markup in them are data: printed as written."""
    from deconstruct.store import Store

    url = f"sqlite:///{tmp_path / 'm.db'}"
    store = Store(url)
    info = store.create_study("m", spec_text="", spec_hash="h", spec_json=copy.deepcopy(TINY), objectives=["val_loss"],
                              directions=["minimize"])
    rows = store.for_study(info.id)
    rows.start_trial(0, search_params={"x": "[/bold]"})
    rows.finish_trial(0, "failed", error="no mixer [red]x[/red] here")
    for argv in (["study", "show", "m", "--storage", url], ["study", "list", "--storage", url]):
        result = CliRunner().invoke(build_app(), argv)
        assert result.exit_code == 0, result.output
    shown = CliRunner().invoke(build_app(), ["study", "show", "m", "--storage", url]).stdout
    assert "[/bold]" in shown and "[red]x" in shown


def _read_only_mount_works() -> bool:
    if shutil.which("unshare") is None or sys.platform != "linux":
        return False
    probe = subprocess.run(["unshare", "-m", "--map-root-user", "true"], capture_output=True)
    plain = subprocess.run(["unshare", "-m", "true"], capture_output=True)
    return probe.returncode == 0 or plain.returncode == 0


@pytest.mark.skipif(not _read_only_mount_works(), reason="needs unshare to mount a read-only file system")
def test_a_read_only_store_can_be_listed_and_reported_but_not_written(tmp_path) -> None:
    """On a read-only file system `study list`, `study show` and `report` read the store (SQLite opened read-only,
    no WAL writes); `study run` is one line, exit 1; the rows are all still there afterwards."""
    from deconstruct.store import Store

    src, ro = tmp_path / "src", tmp_path / "ro"
    src.mkdir()
    ro.mkdir()
    url = f"sqlite:///{src / 's.db'}"
    store = Store(url)
    info = store.create_study("r", spec_text="", spec_hash="h", spec_json=copy.deepcopy(TINY), objectives=["val_loss"],
                              directions=["minimize"])
    rows = store.for_study(info.id)
    rows.start_trial(0, search_params={"train.lr": 0.003})
    rows.finish_trial(0, "completed", values=[2.5])
    store.close()
    (tmp_path / "spec.yaml").write_text(spec_text(name="r"))
    ro_url = f"sqlite:///{ro / 's.db'}"
    exe = [sys.executable, "-m", "deconstruct"]
    script = "\n".join([
        f"mount --bind {src} {ro} && mount -o remount,ro,bind {ro} || exit 99",
        f"{' '.join(exe)} study list --storage {ro_url} --format json > {tmp_path}/list.json; echo $? > {tmp_path}/list.rc",
        f"{' '.join(exe)} study show r --storage {ro_url} > /dev/null; echo $? > {tmp_path}/show.rc",
        f"{' '.join(exe)} study run {tmp_path}/spec.yaml --storage {ro_url} 2> {tmp_path}/run.err; echo $? > {tmp_path}/run.rc",
    ])
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=300)
    if done.returncode == 99:
        pytest.skip("cannot remount read-only here")
    assert (tmp_path / "list.rc").read_text().strip() == "0", done.stderr
    assert '"name": "r"' in (tmp_path / "list.json").read_text()
    assert (tmp_path / "show.rc").read_text().strip() == "0"
    assert (tmp_path / "run.rc").read_text().strip() == "1"
    err = [ln for ln in (tmp_path / "run.err").read_text().splitlines() if ln.strip()]
    assert len(err) == 1 and "read-only" in err[0], err
    assert [t.state for t in Store(url).trials("r")] == ["completed"]  # nothing lost


def _overcommit_refuses(nbytes: int) -> bool:
    """Linux's default overcommit heuristic refuses one allocation larger than memory + swap."""
    try:
        mode = Path("/proc/sys/vm/overcommit_memory").read_text().strip()
        meminfo = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
    except OSError:
        return False
    total = sum(int(meminfo[k].split()[0]) * 1024 for k in ("MemTotal", "SwapTotal") if k in meminfo)
    return mode == "0" and nbytes > 2 * total


@pytest.mark.skipif(not _overcommit_refuses(100 * 2**30), reason="the allocation might succeed (and swap) here")
def test_a_model_too_large_for_memory_is_one_line(tmp_path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(spec_text())
    result = CliRunner().invoke(build_app(), ["train", str(spec), "--set", "model.d_model=100000", "--set", "model.layers=1"])
    assert result.exit_code == 1, result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("error: ")]
    assert len(lines) == 1 and lines[0].startswith("error: out of memory: a tensor of"), result.stderr


def test_report_out_into_a_missing_folder_is_one_line(tmp_path) -> None:
    from deconstruct.store import Store

    url = f"sqlite:///{tmp_path / 'o.db'}"
    Store(url).create_study("o", spec_text="", spec_hash="h", spec_json=copy.deepcopy(TINY), objectives=["val_loss"],
                            directions=["minimize"])
    out = tmp_path / "no" / "such" / "folder" / "r.html"
    result = CliRunner().invoke(build_app(), ["report", "o", "--storage", url, "--format", "html", "--out", str(out)])
    assert result.exit_code in (1, 2), result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.output, result.stderr


def test_workers_start_without_the_working_directory_on_sys_path(tmp_path) -> None:
    """A file in the working directory named like a standard-library module runs inside `python -m` (the
    control), but not inside the workers `study run --workers N` starts."""
    from deconstruct.cli._workers import _WORKER_BOOT

    (tmp_path / "json.py").write_text("import pathlib\npathlib.Path('imported').write_text('yes')\n"
                                      "from importlib import import_module\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    worker = subprocess.run([sys.executable, "-c", _WORKER_BOOT, "plugins", "list", "--format", "json"], cwd=tmp_path,
                            capture_output=True, text=True, env=env, timeout=300)
    assert not (tmp_path / "imported").exists(), "a worker imported json.py from the working directory"
    assert worker.returncode == 0, worker.stderr
    subprocess.run([sys.executable, "-m", "deconstruct", "plugins", "list", "--format", "json"], cwd=tmp_path,
                   capture_output=True, text=True, env=env, timeout=300)
    assert (tmp_path / "imported").exists()  # the control: `python -m` does put it on sys.path


def test_the_sigterm_handler_is_only_installed_while_a_command_runs() -> None:
    import signal

    before = signal.getsignal(signal.SIGTERM)
    CliRunner().invoke(build_app(), ["variants", "list"])
    assert signal.getsignal(signal.SIGTERM) is before  # the CLI inside another program leaves its handler alone
