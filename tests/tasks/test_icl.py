"""In-context linear regression (Garg et al. 2022): batch layout, the least-squares baseline, the read-in
model (causal, spec check, fixed_text_qk rejected) and that attention learns the task."""

from __future__ import annotations

import json

import pytest
import torch
from _support import cli

from deconstruct import SpecError
from deconstruct.model import build_model
from deconstruct.spec import load_spec
from deconstruct.tasks._icl import ICLRegression, ICLRegressionOptions, lstsq_predictions
from deconstruct.train import train

SPEC = {"name": "icl", "task": {"name": "icl_regression", "dims": 4, "n_points": 8},
        "model": {"d_model": 32, "layers": 2, "heads": 2}}


def test_batch_interleaves_x_and_y_with_y_the_linear_function_of_x():
    task = ICLRegression(ICLRegressionOptions(dims=4, n_points=8))
    tokens, y = task.get_batch("train", 5, torch.Generator().manual_seed(0))
    assert tokens.shape == (5, 16, 4) and y.shape == (5, 8) and task.seq_len == 16
    x, ys = tokens[:, 0::2], tokens[:, 1::2]
    assert torch.equal(ys[..., 0], y) and torch.all(ys[..., 1:] == 0)  # (y_i, 0, …, 0) after each x_i
    w = torch.linalg.lstsq(x, y[..., None]).solution  # 8 noise-free points in 4 dims determine w exactly
    assert torch.allclose(x @ w, y[..., None], atol=1e-4)
    assert not torch.allclose(w[0], w[1])  # one w per sequence


def test_seq_len_is_derived_and_an_inconsistent_one_rejected():
    assert ICLRegressionOptions(n_points=5).seq_len == 10
    assert load_spec({"name": "i", "task": {"name": "icl_regression", "n_points": 5, "seq_len": 10}}).task_options.seq_len == 10
    with pytest.raises(SpecError, match="derived as 2·n_points"):
        load_spec({"name": "i", "task": {"name": "icl_regression", "n_points": 5, "seq_len": 12}})


def test_lstsq_baseline_matches_torch_lstsq_on_each_prefix():
    task = ICLRegression(ICLRegressionOptions(dims=4, n_points=8))
    tokens, y = task.get_batch("val", 3, torch.Generator().manual_seed(1))
    x = tokens[:, 0::2]
    pred = lstsq_predictions(x, y)
    assert torch.all(pred[:, 0] == 0)
    for i in (2, 6):  # under-determined (minimum norm) and over-determined prefixes
        w = torch.linalg.lstsq(x[1, :i].double(), y[1, :i, None].double(), driver="gelsd").solution
        assert torch.allclose(pred[1, i].double(), (x[1, i].double() @ w)[0], atol=1e-4)
    out = torch.zeros(3, 16, 1)  # the zero predictor: its val_loss is the zero baseline
    scores = task.evaluate_batch(out, tokens, y)
    assert scores["val_loss"] == scores["baseline_zero"]
    assert scores["baseline_lstsq"][0] < scores["baseline_zero"][0]
    assert scores["val_loss_after_d"][1] == 3 * 4


def test_read_in_model_is_causal_and_has_no_token_embedding():
    torch.manual_seed(0)
    model = build_model(load_spec(SPEC)).eval()
    assert isinstance(model.wte, torch.nn.Linear) and model.head.weight.shape == (1, 32)
    tokens, _ = ICLRegression(ICLRegressionOptions(dims=4, n_points=8)).get_batch("val", 2, torch.Generator().manual_seed(0))
    changed = tokens.clone()
    changed[:, 9:] += torch.randn(2, 7, 4)
    a, b = model(tokens), model(changed)
    assert a.shape == (2, 16, 1)
    assert torch.allclose(a[:, :9], b[:, :9], atol=1e-6) and not torch.allclose(a[:, 9:], b[:, 9:])


def test_spec_check_json_counts_the_read_in_and_read_out(tmp_path):
    path = tmp_path / "icl.yaml"
    path.write_text(json.dumps(SPEC))
    info = cli.json("spec", "check", path)
    assert info["task"]["seq_len"] == 16 and info["params"] == build_model(load_spec(SPEC)).num_params()
    assert info["flops_per_token"] > 2 * (4 * 32 + 32 + 32 + 1)


def test_fixed_text_qk_is_rejected_for_vector_inputs():
    with pytest.raises(SpecError, match="feeds vectors, not tokens"):
        load_spec({**SPEC, "model": {**SPEC["model"], "mixer": "fixed_text_qk"}})
    load_spec({**SPEC, "model": {**SPEC["model"], "mixer": "random_qk"}})  # a random stream needs no tokens


def test_train_runs_end_to_end_and_reports_the_baselines():
    spec = {**SPEC, "train": {"steps": 60, "batch_size": 32, "lr": 3e-3, "eval_every": 60, "eval_batches": 8}}
    res = train(load_spec(spec), seed=0)
    m = res.metrics
    # baseline_zero is the mean of y² over S = 32·8 validation sequences of n = 8 points, y = wᵀx with
    # x, w ~ N(0, I_d): E[y²] = E‖w‖² = d. Per sequence the mean of y² has variance
    # Var‖w‖² + E[Var(y²|w)]/n = 2d + 2(d² + 2d)/n (y|w ~ N(0, ‖w‖²), so Var(y²|w) = 2‖w‖⁴), independent
    # across sequences: allow four standard errors.
    d, n, sequences = 4, 8, 32 * 8
    stderr = ((2 * d + 2 * (d * d + 2 * d) / n) / sequences) ** 0.5  # ≈ 0.23
    assert abs(m["baseline_zero"] - d) < 4 * stderr, (m["baseline_zero"], stderr)
    assert m["baseline_lstsq"] < m["baseline_zero"]
    assert res.val_loss < 1.05 * m["baseline_zero"] and "val_loss_after_d" in m  # at least the zero predictor
