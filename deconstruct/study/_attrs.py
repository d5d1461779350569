"""A trial's measured metrics as Optuna user attributes, so Optuna's own tools (optuna-dashboard,
``study.trials_dataframe()``) show them beside the objective values and the validation curves (Optuna's
intermediate values, which the runner reports for pruning)."""

from __future__ import annotations

from typing import Any


def publish_metrics(trial: Any, runs: list[Any]) -> dict[str, float]:
    """Set one user attribute per metric the trial's runs all measured: the mean over its seeds. Returns
    what was set."""
    from deconstruct.metrics import all_metrics

    names = [m.name for m in all_metrics()]
    names += sorted({k for run in runs for k in (run.metrics or {}) if k not in names})
    out: dict[str, float] = {}
    for name in names:
        values = [run.value(name) for run in runs]
        if values and all(v is not None for v in values):
            out[name] = sum(values) / len(values)  # type: ignore[arg-type]
    for name, value in out.items():
        trial.set_user_attr(name, value)
    return out
