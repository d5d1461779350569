"""Studies: Optuna over the spec's search space, every trial and run recorded in the store.

``run_study(spec)`` runs or continues a study; ``join_study(name)`` adds a worker to one; ``delete_study``
removes one. The runner never prints: progress goes to a :class:`StudyEvents` (the CLI draws it).

The modules, by responsibility:

- ``_runner``: the runner proper (trials, seeds, reuse, pruning reports, the stopping loop);
- ``_space``: the search space (sampling, grids, which searched options apply);
- ``_spec``: the spec data of a study and what makes two specs the same study;
- ``_match``: parameter matching (``study.match``) of every configuration;
- ``_optuna``: Optuna adapters (storage with heartbeats, retries, samplers, pruners, version shims);
- ``_recovery``: dead workers, retries, and the typed :class:`StudyStatus` that decides when a study is done;
- ``_pareto``: best and non-dominated items (pure Python; the CLI and the report use it too);
- ``_events``: progress events, trial outcomes, the summary, the errors.
"""

from deconstruct.study._check import CheckedSearch, check_search, check_space
from deconstruct.study._events import StudyError, StudyEvents, StudySummary, TrialOutcome
from deconstruct.study._match import Matched, Matcher, MatchError, match_space
from deconstruct.study._pareto import (
    best,
    best_record,
    best_trial,
    dominates,
    pareto_front,
    pareto_trials,
    tied_with,
)
from deconstruct.study._recovery import MAX_DEATHS, Stop, StudyStatus
from deconstruct.study._runner import (
    DEFAULT_N_TRIALS,
    GRACE_PERIOD,
    HEARTBEAT_INTERVAL,
    StudyRunner,
    delete_study,
    join_study,
    run_study,
)
from deconstruct.study._space import Param, Sample, SearchSpace, normalize
from deconstruct.study._spec import read_spec, spec_hash, spec_identity

__all__ = [
    "CheckedSearch",
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
    "Stop",
    "StudyError",
    "StudyEvents",
    "StudyRunner",
    "StudyStatus",
    "StudySummary",
    "TrialOutcome",
    "best",
    "best_record",
    "best_trial",
    "check_search",
    "check_space",
    "tied_with",
    "delete_study",
    "dominates",
    "join_study",
    "pareto_front",
    "pareto_trials",
    "read_spec",
    "run_study",
    "spec_hash",
    "spec_identity",
]
