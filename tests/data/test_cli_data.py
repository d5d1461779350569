"""``deconstruct data`` end to end: prepare → info → study run → report, and the one-line refusals."""

from __future__ import annotations

import json
import shutil

import yaml
from typer.testing import CliRunner

from deconstruct.cli import build_app
from deconstruct.data import read_header

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(build_app(), [str(a) for a in args])


def one_line_error(res, code: int = 2) -> str:
    assert res.exit_code == code, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    return lines[0]


STUDY = {
    "name": "on-data",
    "task": {"name": "lm", "seq_len": 16},
    "model": {"d_model": 16, "layers": 1, "heads": 2, "mixer": {"kind": "attention"}},
    "train": {"steps": 3, "batch_size": 4, "eval_every": 3, "eval_batches": 1, "seeds": [0]},
    "search": {"model.mixer.kind": ["attention", "mlp"]},
    "study": {"sampler": "grid", "pruner": "none", "objective": "val_loss", "direction": "minimize"},
}


def test_prepare_info_train_report(tmp_path, corpus):
    out, held = tmp_path / "owt", tmp_path / "held"
    res = invoke("data", "prepare", corpus["jsonl"], "--tokenizer", "bpe:300", "--out", out, "-j", "1", "-f", "json")
    assert res.exit_code == 0, res.output
    header = json.loads(res.stdout)
    assert "prepare: 100%" in res.stderr and "MB/s" in res.stderr  # plain progress lines: stderr is no terminal
    res = invoke("data", "prepare", corpus["parquet"], "--tokenizer", out / "tokenizer.json", "--out", held, "-j", "2")
    assert res.exit_code == 0, res.output
    info = json.loads(invoke("data", "info", out, "--verify", "--format", "json").stdout)
    assert info["content_hash"] == header["content_hash"] and info["vocab_size"] <= 300
    assert info["tokenizer"]["name"] == "bpe:300" and info["bytes_per_token"] > 1
    table = invoke("data", "info", held).stdout
    assert f"content hash   {read_header(held).content_hash}\n" in table and "bytes / token" in table

    spec = tmp_path / "study.yaml"
    spec.write_text(yaml.safe_dump(STUDY))
    db = f"sqlite:///{tmp_path / 's.db'}"
    res = invoke("study", "run", spec, "--storage", db, "--format", "json",
                 "--set", f"task.data={out}", "--set", f"task.eval={{wiki: {held}}}",
                 "--set", "study.objective=wiki_bits_per_byte")
    assert res.exit_code == 0, res.output
    from deconstruct.store import Store

    store = Store(db, create=False)
    runs = store.runs("on-data")
    assert len(runs) == 2 and all(r.status == "completed" for r in runs)
    assert {r.versions["data"]["hash"] for r in runs} == {header["content_hash"]}
    assert all(r.versions["data"]["eval"] == {"wiki": read_header(held).content_hash} for r in runs)
    assert all({"wiki_loss", "wiki_perplexity", "wiki_bits_per_byte", "bits_per_byte"} <= set(r.metrics) for r in runs)
    by_trial = {r.trial_number: r.metrics["wiki_bits_per_byte"] for r in runs}  # an evaluation set as objective
    assert {t.number: t.values[0] for t in store.trials("on-data")} == by_trial
    res = invoke("report", "on-data", "--storage", db, "--metric", "wiki_bits_per_byte", "--format", "json")
    assert res.exit_code == 0, res.output
    assert "wiki_bits_per_byte" in res.stdout

    # the dataset is prepared again in place with other documents, and one more run lands in the study
    from sqlalchemy import update

    from deconstruct.store._schema import RunRow

    with store.session() as s, s.begin():
        versions = {**runs[-1].versions, "data": {**runs[-1].versions["data"], "hash": "0" * 64}}
        s.execute(update(RunRow).where(RunRow.id == runs[-1].id).values(versions=versions))
    store.engine.dispose()
    line = one_line_error(invoke("report", "on-data", "--storage", db))
    assert "mixes runs that saw different data" in line and "000000000000" in line


def test_broken_datasets_are_refused_in_one_line(tmp_path, bytes_dataset):
    broken = tmp_path / "broken"
    shutil.copytree(bytes_dataset, broken)
    shard = broken / "tokens-00000.bin"
    shard.write_bytes(shard.read_bytes()[:-2])
    assert "truncated" in one_line_error(invoke("data", "info", broken))
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump({k: v for k, v in STUDY.items() if k not in ("search", "study")}))
    assert "truncated" in one_line_error(invoke("train", spec, "--set", f"task.data={broken}"))
    assert "not both" in one_line_error(invoke("train", spec, "--set", f"task.data={bytes_dataset}",
                                               "--set", "task.corpus=/x"))
    line = one_line_error(invoke("data", "prepare", tmp_path / "none*.jsonl", "--out", tmp_path / "o"))
    assert "matches no files" in line
    line = one_line_error(invoke("data", "prepare", "stdlib", "--out", bytes_dataset))
    assert "already holds a prepared dataset" in line
