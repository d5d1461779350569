"""Small real studies for the report tests: tiny models really trained on the stdlib corpus, recorded through
the store exactly as the study runner records them (deconstruct.study), with matching Optuna studies.

``tiny-ablation`` — the quickstart's grid, mixer.kind × layout, seeds 0 and 1:
  trial 0  attention × uniform: seed 0 completed, seed 1 interrupted (Ctrl-C) → trial failed "interrupted"
  trial 1  attention × uniform (retry of 0): seed 0 reused, seed 1 trained
  trial 2  attention × hybrid: the same resolved configuration (with attention everywhere the layout changes
           nothing), so both seeds are reused and the trial has no runs of its own
  trial 3  mlp × uniform, trial 4  mlp × hybrid: trained
``tiny-pareto`` — the grid again with two objectives (val_loss, params), same trained results.
``tiny-unpaired`` — as a TPE sampler might leave it: attention × uniform and mlp × hybrid completed, mlp ×
  uniform pruned at its second evaluation; no two points differ in mixer.kind only, so no pair exists.
``tiny-one`` — one configuration, one seed, no search, no Optuna study; recorded without attention
  diagnostics, as by a runner from before ``dc_diagnostic``.
Every other completed run gets its attention indicators (``TrainResult.diagnostics``) through
``Store.add_diagnostics``, as the runner writes them: attention layers have them, ``mlp`` layers none.
"""

from __future__ import annotations

import copy
import statistics
import time

import pytest
from _support import tiny_spec

KIND, LAYOUT = "model.mixer.kind", "model.layout"
SPEC = tiny_spec(
    {"kind": "attention"}, name="tiny-ablation", task={"seq_len": 16}, d_model=16, layout="uniform",
    train={"steps": 3, "eval_every": 1, "seeds": [0, 1]},
    search={KIND: ["attention", "mlp"], LAYOUT: ["uniform", "hybrid"]},
    study={"sampler": "grid", "pruner": "none", "objective": "val_loss", "direction": "minimize"},
)


class Stop(Exception):
    pass


class StopAt:
    """A training callback that stops the run after training step ``step`` or at evaluation ``eval_step``,
    keeping the curve so far (as the runner's callback writes it)."""

    def __init__(self, step: int | None = None, eval_step: int | None = None):
        self.step, self.eval_step, self.curve = step, eval_step, []

    def on_step(self, step, loss, tokens_per_second):
        if self.step is not None and step >= self.step:
            raise Stop()

    def on_eval(self, step, metrics):
        self.curve += [(step, k, v) for k, v in metrics.items()]
        if self.eval_step is not None and step >= self.eval_step:
            raise Stop()


class Recorder:
    """Writes one study through the store's API, the way deconstruct.study's runner does."""

    def __init__(self, store, spec: dict, objectives=("val_loss",), directions=("minimize",)):
        import torch
        import yaml

        import deconstruct
        from deconstruct.spec import load_spec

        self.store, self.spec = store, spec
        self.objectives = list(objectives)
        self.info = store.create_study(
            spec["name"], spec_text=yaml.safe_dump(spec), spec_hash="0" * 16,
            spec_json=load_spec(spec).spec.model_dump(mode="json"), objectives=self.objectives,
            directions=list(directions), deconstruct_version=deconstruct.__version__, torch_version=torch.__version__,
        )
        self.rows = store.for_study(self.info.id)

    def trial(self, number, point, resolved, retry_of=None):
        self.rows.start_trial(number, search_params=point, retry_of=retry_of)
        self.rows.update_trial(number, config_hash=resolved.config_hash())

    def run(self, number, seed, point, resolved, result=None, status="completed", error=None, curve=(), wall=None,
            diagnostics=True):
        run_id = self.rows.add_run(number, seed, config_hash=resolved.config_hash(),
                                    config=resolved.config(), search_params=point)
        self.store.add_metrics(run_id, result.history if result is not None else curve)
        if result is not None and diagnostics:
            self.store.add_diagnostics(run_id, result.diagnostics)
        self.store.finish_run(run_id, status, error=error, result=result,
                              wall_seconds=wall if wall is not None else (result.seconds if result else 0.01))

    def complete(self, number, results, reused=()):
        values = [statistics.fmean(r.to_dict()[o] for r in results) for o in self.objectives]
        self.rows.finish_trial(number, "completed", values=values, reused=list(reused))
        return values


def build_tiny_studies(db) -> dict:
    """Train and record the four studies into the SQLite file ``db``; return what the tests recompute from."""
    import optuna
    from optuna.distributions import CategoricalDistribution
    from optuna.trial import TrialState, create_trial

    from deconstruct.spec import load_spec
    from deconstruct.store import INTERRUPTED, Store
    from deconstruct.train import train

    url = f"sqlite:///{db}"
    store = Store(url)
    points = {(k, la): {KIND: k, LAYOUT: la} for k in ("attention", "mlp") for la in ("uniform", "hybrid")}
    resolved = {key: load_spec(SPEC, [f"{KIND}={key[0]}", f"{LAYOUT}={key[1]}"]) for key in points}
    assert resolved["attention", "uniform"].config_hash() == resolved["attention", "hybrid"].config_hash()
    results = {}  # (kind, layout, seed) -> TrainResult
    for k, la in (("attention", "uniform"), ("mlp", "uniform"), ("mlp", "hybrid")):
        for seed in (0, 1):
            results[k, la, seed] = train(resolved[k, la], seed=seed)
    for seed in (0, 1):
        results["attention", "hybrid", seed] = results["attention", "uniform", seed]
    R = results

    # tiny-ablation
    rec = Recorder(store, SPEC)
    au, ah, mu, mh = (("attention", "uniform"), ("attention", "hybrid"), ("mlp", "uniform"), ("mlp", "hybrid"))
    rec.trial(0, points[au], resolved[au])
    rec.run(0, 0, points[au], resolved[au], R[au + (0,)])
    stop = StopAt(step=1)
    with pytest.raises(Stop):
        train(resolved[au], seed=1, callback=stop)
    rec.run(0, 1, points[au], resolved[au], status="failed", error=INTERRUPTED, curve=stop.curve)
    store.for_study(rec.info.id).fail_running(0, INTERRUPTED)
    rec.trial(1, points[au], resolved[au], retry_of=0)
    rec.run(1, 1, points[au], resolved[au], R[au + (1,)])
    values = {1: rec.complete(1, [R[au + (0,)], R[au + (1,)]], reused=[0])}
    rec.trial(2, points[ah], resolved[ah])
    values[2] = rec.complete(2, [R[ah + (0,)], R[ah + (1,)]], reused=[0, 1])
    for number, key in ((3, mu), (4, mh)):
        rec.trial(number, points[key], resolved[key])
        for seed in (0, 1):
            rec.run(number, seed, points[key], resolved[key], R[key + (seed,)])
        values[number] = rec.complete(number, [R[key + (0,)], R[key + (1,)]])

    # tiny-pareto
    mo = Recorder(store, {**copy.deepcopy(SPEC), "name": "tiny-pareto"}, ["val_loss", "params"], ["minimize", "minimize"])
    mo_values = {}
    for number, key in enumerate((au, ah, mu, mh)):
        mo.trial(number, points[key], resolved[key])
        if key != ah:
            for seed in (0, 1):
                mo.run(number, seed, points[key], resolved[key], R[key + (seed,)])
        mo_values[number] = mo.complete(number, [R[key + (0,)], R[key + (1,)]], reused=[0, 1] if key == ah else [])

    # tiny-unpaired
    up = Recorder(store, {**copy.deepcopy(SPEC), "name": "tiny-unpaired"})
    up_values = {}
    for number, key in ((0, au), (1, mh)):
        up.trial(number, points[key], resolved[key])
        for seed in (0, 1):
            up.run(number, seed, points[key], resolved[key], R[key + (seed,)])
        up_values[number] = up.complete(number, [R[key + (0,)], R[key + (1,)]])
    stop = StopAt(eval_step=2)
    tick = time.perf_counter()
    with pytest.raises(Stop):
        train(resolved[mu], seed=0, callback=stop)
    pruned_loss = next(v for _, name, v in reversed(stop.curve) if name == "val_loss")
    pruned_at = f"pruned at step 2 of seed 0 (mean val_loss {pruned_loss:.4f})"
    up.trial(2, points[mu], resolved[mu])
    up.run(2, 0, points[mu], resolved[mu], status="pruned", error=pruned_at, curve=stop.curve,
           wall=time.perf_counter() - tick)
    store.for_study(up.info.id).finish_trial(2, "pruned", error=pruned_at)

    # tiny-one
    one_spec = {**copy.deepcopy(SPEC), "name": "tiny-one", "search": {}}
    one_spec["train"]["seeds"] = [0]
    one = Recorder(store, one_spec)
    one.trial(0, {}, resolved[au])
    one.run(0, 0, {}, resolved[au], R[au + (0,)], diagnostics=False)
    one.complete(0, [R[au + (0,)]])
    store.close()

    # the Optuna studies, trial for trial
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dists = {k: CategoricalDistribution(v) for k, v in SPEC["search"].items()}
    o = optuna.create_study(study_name="tiny-ablation", storage=url, direction="minimize")
    o.add_trial(create_trial(state=TrialState.FAIL, params=points[au], distributions=dists))
    for number, key in ((1, au), (2, ah), (3, mu), (4, mh)):
        o.add_trial(create_trial(params=points[key], distributions=dists, value=values[number][0]))
    o = optuna.create_study(study_name="tiny-pareto", storage=url, directions=["minimize", "minimize"])
    for number, key in enumerate((au, ah, mu, mh)):
        o.add_trial(create_trial(params=points[key], distributions=dists, values=mo_values[number]))
    o = optuna.create_study(study_name="tiny-unpaired", storage=url, direction="minimize")
    for number, key in ((0, au), (1, mh)):
        o.add_trial(create_trial(params=points[key], distributions=dists, value=up_values[number][0]))
    o.add_trial(create_trial(state=TrialState.PRUNED, params=points[mu], distributions=dists,
                             intermediate_values={2: pruned_loss}))
    return {"url": url, "db": db, "results": results, "resolved": resolved, "pruned": pruned_at}


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory) -> dict:
    return build_tiny_studies(tmp_path_factory.mktemp("report") / "study.db")


# ``tiny-real`` — written by the real study runner (``deconstruct study run``), not by the Recorder above, so
# runner and report cannot drift apart unnoticed: a 2×2 grid whose four points are four distinct configurations.
REAL_SPEC = tiny_spec(
    name="tiny-real", task={"seq_len": 16}, d_model=16, layers=1, train={"seeds": [0, 1]},
    search={KIND: ["attention", "mlp"], "model.channel_mixer": ["mlp", "none"]}, study={"sampler": "grid"},
)


@pytest.fixture(scope="session")
def real_study(tmp_path_factory) -> dict:
    """``study run`` through the CLI on REAL_SPEC into a fresh SQLite file; {"url", "name", "summary"}."""
    import json

    import torch
    import yaml
    from _support import cli

    root = tmp_path_factory.mktemp("real")
    spec = root / "spec.yaml"
    spec.write_text(yaml.safe_dump(REAL_SPEC, sort_keys=False))
    url = f"sqlite:///{root / 'study.db'}"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models on shared cores: one thread is fastest
    try:
        res = cli("study", "run", spec, "--storage", url, "--format", "json")
    finally:
        torch.set_num_threads(threads)
    assert res.exit_code == 0, res.stderr + res.stdout
    summary = json.loads(res.stdout)
    assert summary["states"] == {"completed": 4} and summary["trained"] == 8, summary
    return {"url": url, "name": REAL_SPEC["name"], "summary": summary}
