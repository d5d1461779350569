"""Every per-run metric, listed once: where it is stored, its aliases, its direction and how it is shown.

The store's column list, the study runner's known objectives, ``train --format json``, the report's
``--metric`` handling and every table read from this one table. A task (or a plugin's task) says which
metrics its runs carry with :func:`produces` (after :func:`declare` for a metric of its own), in its
``register_tasks`` hook; a name nobody declared is treated as a loss-like value (minimised, shown with four
decimals) and reported as such.

Evaluation sets (the ``lm`` task's ``eval: {NAME: DIR}``) get one family of names, ``NAME_QUANTITY``, as the
validation split has ``val_loss``: ``wikitext_loss``, ``wikitext_perplexity``, ``wikitext_bits_per_byte``
(see :func:`declare_eval_set`). The validation split's own are ``val_loss``, ``val_perplexity`` and
``bits_per_byte``.

    >>> get("flops").name
    'flops_per_token'
    >>> direction("accuracy")
    'maximize'
    >>> show("params", 221760.0)
    '221,760'
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

Direction = Literal["minimize", "maximize"]
Kind = Literal["loss", "count", "rate", "seconds", "fraction", "text"]


@dataclass(frozen=True)
class Metric:
    """One per-run value.

    ``column``: stored as a column of ``dc_run`` (else as a key of the run's ``metrics`` JSON).
    ``kind``: how it is displayed — ``loss`` (4 decimals), ``count`` (a whole number), ``rate`` (per second),
    ``seconds``, ``fraction`` (0..1, e.g. accuracy), ``text``.
    ``tasks``: the tasks whose runs carry it (:func:`produces` adds one); ``None``: every run has it.
    """

    name: str
    direction: Direction = "minimize"
    kind: Kind = "loss"
    column: bool = False
    aliases: tuple[str, ...] = ()
    tasks: tuple[str, ...] | None = None
    help: str = ""


_TABLE: dict[str, Metric] = {}
_ALIASES: dict[str, str] = {}


def declare(metric: Metric) -> Metric:
    """Add ``metric`` to the table (tasks and plugins call this for metrics of their own). Declaring the
    same name again with the same definition is a no-op (its ``tasks`` are merged); a different definition
    is an error."""
    old = _TABLE.get(metric.name)
    if old is not None:
        if replace(old, tasks=None) != replace(metric, tasks=None):
            raise ValueError(f"metric {metric.name!r} is already declared differently ({old})")
        tasks = None if old.tasks is None or metric.tasks is None else tuple(dict.fromkeys(old.tasks + metric.tasks))
        metric = replace(metric, tasks=tasks)
    _TABLE[metric.name] = metric
    for alias in metric.aliases:
        _ALIASES[alias] = metric.name
    return metric


def produces(task: str, *names: str) -> None:
    """Say that runs of ``task`` carry the declared metrics ``names`` (a task's ``register_tasks`` hook
    calls this next to ``register(task, …)``)."""
    for name in names:
        metric = _TABLE.get(canonical(name))
        if metric is None:
            raise ValueError(f"metric {name!r} is not declared; declare(Metric({name!r}, ...)) first")
        if metric.tasks is not None and task not in metric.tasks:
            _TABLE[metric.name] = replace(metric, tasks=(*metric.tasks, task))


def measures(task: str, name: str) -> bool:
    """Runs of ``task`` carry metric ``name`` (e.g. the training loop computes ``accuracy`` only then)."""
    return any(m.name == canonical(name) for m in measured(task))


def measured(task: str) -> list[Metric]:
    """The metrics a run of ``task`` carries: those of every run, then the task's own."""
    _load_plugins()
    return [m for m in _TABLE.values() if m.tasks is None or task in m.tasks]


for _m in (
    Metric("val_loss", column=True, help="validation loss (mean per labelled position)"),
    Metric("params", kind="count", column=True, help="trainable parameters"),
    Metric("flops_per_token", kind="count", column=True, aliases=("flops",),
           help="analytic forward FLOPs per token"),
    Metric("tokens", kind="count", column=True, help="training tokens seen"),
    Metric("tokens_per_second", direction="maximize", kind="rate", column=True, help="training throughput"),
    Metric("peak_memory_bytes", kind="count", column=True, help="peak accelerator memory"),
    Metric("wall_seconds", kind="seconds", column=True, help="wall time of the run, set-up included"),
    Metric("steps", kind="count", column=True, help="optimizer steps taken"),
    Metric("train_seconds", kind="seconds", aliases=("seconds",), help="training time"),
    Metric("skip_block_val_loss", aliases=("skip_val_loss",),
           help="validation loss with the relaxed layers' blocks removed (the paper's skip evaluation)"),
    Metric("skip_mixer_val_loss", help="validation loss with only the relaxed layers' token mixers removed"),
    # produced by some tasks only: each task's register_tasks hook says so with produces()
    Metric("bits_per_byte", tasks=(), aliases=("val_bits_per_byte",),
           help="validation loss in bits per byte of text (loss / ln 2 / bytes per token)"),
    Metric("val_perplexity", tasks=(), help="validation perplexity per token, exp(val_loss)"),
    Metric("accuracy", direction="maximize", kind="fraction", tasks=(), help="accuracy on labelled positions"),
    Metric("compile", kind="text", help="with train.compile: compiled, or eager and why it could not be compiled"),
    Metric("attention_backend", kind="text",
           help="what computed each layer's token mixing (comma-separated, layer 1 first), e.g. sdpa,window-blocked"),
):
    declare(_m)


#: what every evaluation set reports, and how (``NAME_QUANTITY``)
EVAL_QUANTITIES = {
    "loss": "loss per token on evaluation set {set!r}",
    "perplexity": "perplexity per token on evaluation set {set!r}, exp(loss)",
    "bits_per_byte": "bits per byte of text of evaluation set {set!r} (loss / ln 2 / its bytes per token)",
}


def declare_eval_set(set_name: str) -> dict[str, str]:
    """Declare the metrics of evaluation set ``set_name`` and return ``{quantity: metric name}``, e.g.
    ``{"loss": "wikitext_loss", …}``. A name whose metrics would collide with another metric is an error.

        >>> declare_eval_set("wikitext")["bits_per_byte"]
        'wikitext_bits_per_byte'
    """
    names = {q: f"{set_name}_{q}" for q in EVAL_QUANTITIES}
    for q, name in names.items():
        declare(Metric(name, tasks=("lm",), help=EVAL_QUANTITIES[q].format(set=set_name)))
    return names


#: training FLOPs = TRAIN_FLOPS_FACTOR × forward FLOPs/token × tokens (backward ≈ 2 × forward; Kaplan et al.
#: 2020), the convention of ``train.flops`` and of the reports' compute matching
TRAIN_FLOPS_FACTOR = 3


def train_flops(flops_per_token: float | None, tokens: float | None) -> float | None:
    """Training compute of a run: 3 × its analytic forward FLOPs/token × the tokens it trained on."""
    if flops_per_token is None or tokens is None:
        return None
    return TRAIN_FLOPS_FACTOR * flops_per_token * tokens


def canonical(name: str) -> str:
    """The metric's own name for ``name`` (an alias such as ``flops`` or ``seconds`` resolves)."""
    return _ALIASES.get(name, name)


_plugins_loaded = False


def _load_plugins() -> None:
    """Load the plugin registry once, so that metrics declared by tasks and plugins are in the table."""
    global _plugins_loaded
    if not _plugins_loaded:
        _plugins_loaded = True  # first: a hook that looks a metric up must not load the registry again
        from deconstruct.plugins import get_registry

        get_registry()


def find(name: str) -> Metric | None:
    """The metric called ``name`` (or an alias of it) as declared so far, without loading plugins."""
    return _TABLE.get(canonical(name))


def get(name: str) -> Metric:
    """The declared metric called ``name`` (or an alias of it), plugins' included; undeclared names get the
    default entry (a loss-like value in the run's metrics JSON)."""
    if find(name) is None:
        _load_plugins()
    return find(name) or Metric(canonical(name))


def is_declared(name: str) -> bool:
    return find(get(name).name) is not None


def all_metrics() -> list[Metric]:
    _load_plugins()
    return list(_TABLE.values())


def columns() -> tuple[str, ...]:
    """The metrics stored as ``dc_run`` columns, in table order."""
    return tuple(m.name for m in _TABLE.values() if m.column)


def direction(name: str) -> Direction:
    return get(name).direction


def show(name: str, value: float | None, digits: int = 4) -> str:
    """``value`` as tables show metric ``name``: counts as whole numbers with separators, the rest with
    ``digits`` decimals (or significant digits when very large or small); ``—`` for a missing value."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    kind = get(name).kind
    if kind == "text":
        return str(value)
    if kind == "count":
        return f"{round(value):,}"
    if kind == "rate":
        return human(value)
    if kind == "seconds":
        return f"{value:.1f}"
    if value == 0 or 1e-3 <= abs(value) < 1e4:
        return f"{value:.{digits}f}"
    return f"{value:.{digits}g}"


def human(x: float | None) -> str:
    """A large number with a unit suffix: 221760 → ``221.76k``; ``—`` for a missing value."""
    if x is None:
        return "—"
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= div:
            return f"{x / div:.2f}{unit}"
    return f"{x:.0f}" if float(x).is_integer() else f"{x:.3g}"
