"""docs/make_results.py builds the results page from the store: a 1-step quickstart study written by the real
runner, then the page's table and verdicts are read back and checked against the store's runs."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_generator():
    spec = importlib.util.spec_from_file_location("make_results", ROOT / "docs" / "make_results.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["make_results"] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def test_page_is_generated_from_the_store(tmp_path):
    from deconstruct.store import Store
    from deconstruct.study import run_study

    gen = load_generator()
    url = f"sqlite:///{tmp_path / 'results.db'}"
    data = {"name": "quickstart", "task": {"name": "lm", "corpus": "stdlib", "seq_len": 16, "max_bytes": 200_000},
            "model": {"d_model": 16, "layers": 2, "heads": 2},
            "train": {"steps": 2, "batch_size": 2, "eval_every": 2, "eval_batches": 1, "seeds": [0, 1]},
            "search": {"model.mixer.kind": ["attention", "mlp"], "model.layout": ["uniform", "hybrid"]},
            "study": {"sampler": "grid"}}
    run_study(data, storage=url)
    out = tmp_path / "results.md"
    assert gen.main(["--storage", url, "--only", "quickstart", "--out", str(out), "--no-readme"]) == 0
    page = out.read_text()
    assert "## quickstart" in page and "deconstruct study run studies/quickstart.yaml" in page
    verdicts = re.findall(r"- \*\*(agrees|does not agree|cannot tell at this size)\*\* — (.*)", page)
    assert len(verdicts) == len(gen.STUDIES[0].claims)
    # the first claim's Δ is the mean over seeds of mlp-uniform − attention-uniform, read from the runs
    runs = Store(url).runs("quickstart", status="completed")
    # (attention's hybrid is the same model as its uniform: the runner trained it once, under either point)
    loss = {(r.search_params.get("model.mixer.kind"), r.search_params.get("model.layout"), r.seed): r.val_loss
            for r in runs}
    attention = {s: v for (kind, _, s), v in loss.items() if kind == "attention"}
    diffs = [loss[("mlp", "uniform", s)] - attention[s] for s in (0, 1)]
    assert f"Δ = {sum(diffs) / 2:+.4f}" in verdicts[0][1]
    assert re.search(r"rows #\d+ \(`[^`]*mlp[^`]*`\) vs #\d+", verdicts[0][1])
    assert (tmp_path / "results" / "quickstart.html").stat().st_size > 1000
