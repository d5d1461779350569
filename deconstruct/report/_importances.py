"""Parameter importances: Optuna's own evaluator over the study's completed trials (read from Optuna's tables).

Only what Optuna alone computes is read from Optuna; the note says how far to trust the numbers (too few
trials, a single varying parameter whose importance is 1 by construction, PED-ANOVA below ~50 trials).
"""

from __future__ import annotations

import json
import math
import warnings
from typing import Any

from deconstruct.report._load import StudyData
from deconstruct.report._model import Importances

#: fewest completed trials for which parameter importances are computed
MIN_IMPORTANCE_TRIALS = 4
#: fewest completed trials for which they are shown as numbers: from a handful of trials an evaluator ranks
#: noise (4 trials gave 1.000 / 0.000 against a clear effect table); below it the report says so instead
MIN_SHOWN_IMPORTANCE_TRIALS = 10

def importances(study: StudyData, engine: Any) -> Importances:
    """Optuna's parameter importances (its default evaluator) over the study's completed trials."""
    from sqlalchemy import inspect

    try:
        import optuna
    except ImportError:  # pragma: no cover - optuna is a dependency
        return Importances(None, "", 0, "parameter importances need optuna, which is not installed")
    evaluator = "PED-ANOVA" if int(optuna.__version__.split(".")[0]) >= 5 else "fANOVA"
    evaluator = f"{evaluator} (Optuna {optuna.__version__} default evaluator)"
    if not inspect(engine).has_table("studies"):
        return Importances(None, evaluator, 0, "parameter importances need Optuna's tables, and this storage has none")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        ostudy = optuna.load_study(study_name=study.name, storage=study.storage)
    except KeyError:
        return Importances(None, evaluator, 0, f"parameter importances need the Optuna study {study.name!r}, which this storage lacks")
    trials = ostudy.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    n = len(trials)
    varying = sorted({p for t in trials for p in t.params
                      if len({json.dumps(u.params.get(p), sort_keys=True) for u in trials}) > 1})
    if n < MIN_IMPORTANCE_TRIALS:
        return Importances(None, evaluator, n, f"parameter importances need at least {MIN_IMPORTANCE_TRIALS} "
                           f"completed trials; this study has {n}")
    if not varying:
        return Importances(None, evaluator, n, "no searched parameter takes more than one value among the "
                           "completed trials, so there is nothing to rank")
    target = None
    notes = []
    if len(study.objectives) > 1:
        sign = 1.0 if study.directions[0] == "minimize" else -1.0
        target = lambda t: sign * t.values[0]  # noqa: E731 - importance for the primary objective
        notes.append(f"for {study.objectives[0]} (the first of {len(study.objectives)} objectives)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            values = optuna.importance.get_param_importances(ostudy, params=varying, target=target)
    except Exception as exc:
        return Importances(None, evaluator, n, f"Optuna could not compute importances: {type(exc).__name__}: {exc}")
    notes.append(f"over {n} completed trials")
    if len(varying) == 1:
        notes.append(f"only {varying[0]} varies, so its importance is 1 by construction")
    elif evaluator.startswith("PED-ANOVA") and n < 50:
        top = max(1, math.ceil(0.1 * n))
        notes.append(f"PED-ANOVA compares the top 10% of trials ({top} here) with all of them: "
                     "indicative only below ~50 trials")
    if n < MIN_SHOWN_IMPORTANCE_TRIALS:
        return Importances(dict(values), evaluator, n, f"parameter importances are not shown from {n} completed "
                           f"trials (at least {MIN_SHOWN_IMPORTANCE_TRIALS}): read the effect tables instead",
                           shown=False)
    return Importances(dict(values), evaluator, n, "; ".join(notes))
