"""Studies: Optuna over the spec's search space, every trial and run recorded in the store.

``run_study(spec)`` runs or continues a study; ``join_study(name)`` adds a worker to one; ``delete_study``
removes one. The runner never prints: progress goes to a :class:`StudyEvents` (the CLI draws it).
"""

from deconstruct.study._match import Matched, Matcher, MatchError, match_space
from deconstruct.study._runner import (
    DEFAULT_N_TRIALS,
    GRACE_PERIOD,
    HEARTBEAT_INTERVAL,
    MAX_DEATHS,
    StudyError,
    StudyEvents,
    StudyRunner,
    StudySummary,
    TrialOutcome,
    best_trial,
    delete_study,
    join_study,
    pareto_front,
    read_spec,
    run_study,
    spec_hash,
    spec_identity,
)
from deconstruct.study._space import Param, Sample, SearchSpace, normalize

__all__ = [
    "MatchError",
    "Matched",
    "Matcher",
    "match_space",
    "normalize",
    "DEFAULT_N_TRIALS",
    "GRACE_PERIOD",
    "HEARTBEAT_INTERVAL",
    "MAX_DEATHS",
    "Param",
    "Sample",
    "SearchSpace",
    "StudyError",
    "StudyEvents",
    "StudyRunner",
    "StudySummary",
    "TrialOutcome",
    "best_trial",
    "delete_study",
    "join_study",
    "pareto_front",
    "read_spec",
    "run_study",
    "spec_hash",
    "spec_identity",
]
