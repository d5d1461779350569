"""deconstruct.metrics: one table of per-run metrics that tasks and plugins extend."""

from __future__ import annotations

import pytest

from deconstruct import metrics
from deconstruct.metrics import Metric


def test_aliases_resolve_and_columns_are_the_stored_ones():
    assert metrics.get("flops").name == "flops_per_token" and metrics.get("seconds").name == "train_seconds"
    assert metrics.columns() == ("val_loss", "params", "flops_per_token", "tokens", "tokens_per_second",
                                 "peak_memory_bytes", "wall_seconds", "steps")
    assert metrics.direction("tokens_per_second") == "maximize" and metrics.direction("val_loss") == "minimize"


def test_builtin_tasks_say_what_their_runs_carry():
    def names(task: str) -> set[str]:
        return {m.name for m in metrics.measured(task)}

    every = {"val_loss", "params", "train_seconds", "skip_block_val_loss", "skip_mixer_val_loss"}
    assert every <= names("lm") and "bits_per_byte" in names("lm") and "accuracy" not in names("lm")
    assert "accuracy" in names("mqar") and "accuracy" in names("cloze") and "bits_per_byte" not in names("mqar")
    assert {"baseline_lstsq", "baseline_zero", "val_loss_after_d"} <= names("icl_regression")
    assert metrics.direction("accuracy") == "maximize"


def test_a_plugin_metric_is_declared_once_and_a_different_definition_is_refused(monkeypatch):
    monkeypatch.setattr(metrics, "_TABLE", dict(metrics._TABLE))  # the declarations below end with the test
    m = metrics.declare(Metric("test_recall", direction="maximize", kind="fraction", tasks=()))
    metrics.produces("test_task_a", "test_recall")
    metrics.declare(m)  # the same definition again: a no-op that keeps the tasks
    metrics.produces("test_task_b", "test_recall")
    assert metrics.get("test_recall").tasks == ("test_task_a", "test_task_b")
    assert "test_recall" in {x.name for x in metrics.measured("test_task_b")}
    with pytest.raises(ValueError, match="already declared differently"):
        metrics.declare(Metric("test_recall", direction="minimize"))
    with pytest.raises(ValueError, match="not declared"):
        metrics.produces("test_task_a", "no_such_metric")


def test_undeclared_names_are_loss_like():
    m = metrics.get("some_new_loss")
    assert (m.direction, m.kind, m.column) == ("minimize", "loss", False) and not metrics.is_declared("some_new_loss")


def test_show_formats_by_kind():
    assert metrics.show("params", 221760) == "221,760"
    assert metrics.show("val_loss", 2.345678) == "2.3457"
    assert metrics.show("tokens_per_second", 12345.0) == "12.35k"
    assert metrics.show("val_loss", None) == "—" and metrics.show("val_loss", float("nan")) == "—"
    assert metrics.human(3e9) == "3.00G" and metrics.human(12) == "12"
