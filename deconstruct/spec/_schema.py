"""The spec: one YAML file describing task, model, training, search space and study.

Every section is a pydantic model with ``extra="forbid"``: a misspelt key is an error that names its YAML
path and line and suggests the nearest valid key. Mixers, channel mixers and tasks are open sets (plugins
add to them): their sections hold a ``kind``/``name`` plus options that the registered options model
validates in :mod:`deconstruct.spec._resolve`.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class _Named(BaseModel):
    """A registered name plus free-form options (validated later by the registered options model).
    A bare string ``NAME`` means ``{KEY: NAME}``, where KEY is the subclass's name field."""

    model_config = ConfigDict(extra="allow")
    name_key: ClassVar[str]

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, data: Any) -> Any:
        return {cls.name_key: data} if isinstance(data, str) else data

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class MixerSpec(_Named):
    """``{kind: NAME, **options}``; a bare string ``NAME`` means ``{kind: NAME}``."""

    name_key = "kind"
    kind: str = "attention"


class TaskSpec(_Named):
    """``{name: NAME, **options}`` — e.g. ``{name: lm, corpus: stdlib, seq_len: 128}``."""

    name_key = "name"
    name: str = "lm"


class ModelSpec(_Section):
    d_model: int = Field(default=128, ge=8, description="residual stream width d")
    layers: int = Field(default=4, ge=1, le=512, description="number of blocks")
    heads: int = Field(default=4, ge=1, description="attention heads h (head width d/h)")
    mixer: MixerSpec = Field(default_factory=MixerSpec, description="token mixer of every layer (the relaxed one in hybrid layouts)")
    standard: MixerSpec = Field(default_factory=MixerSpec, description="what 'standard attention' means for layouts and `standard_layers`")
    channel_mixer: MixerSpec = Field(default_factory=lambda: MixerSpec(kind="mlp"), description="mlp | glu | none | plugin")
    mlp_ratio: float = Field(default=4.0, gt=0, description="hidden width of the channel mixer as a multiple of d")
    layout: str | list[MixerSpec] = Field(default="uniform", description="uniform, a preset (hybrid, odd, top, …) or one mixer per layer")
    standard_layers: list[int] | None = Field(default=None, description="1-indexed layers that keep standard attention (overrides layout)")
    overrides: dict[int, MixerSpec] = Field(default_factory=dict, description="1-indexed layer -> mixer, applied last")
    positions: Literal["learned", "rope", "none"] = "learned"
    norm: Literal["layernorm", "rmsnorm"] = "layernorm"
    tie_embeddings: bool = True
    bias: bool = Field(default=False, description="biases in linear layers and norms")
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    init_std: float = Field(default=0.02, gt=0)
    parallel: bool = Field(
        default=False,
        description="parallel blocks (GPT-J, PaLM): x + mixer(norm(x)) + channel(norm(x)), one norm, instead of one after the other",
    )
    backend: Literal["auto", "eager", "sdpa", "triton", "compile"] = Field(
        default="auto", description="attention kernel: auto = sdpa for softmax (never slower than PyTorch) and the fastest exact path for masked forms"
    )


class TrainSpec(_Section):
    steps: int = Field(default=200, ge=1, description="optimizer steps (the budget unless tokens/seconds is set)")
    tokens: int | None = Field(default=None, ge=1, description="budget in training tokens; sets steps = tokens / (batch·seq_len)")
    flops: float | None = Field(
        default=None, gt=0, allow_inf_nan=False,
        description="budget in training FLOPs (3 × analytic forward FLOPs/token × tokens): each configuration trains the steps its cost allows",
    )
    seconds: float | None = Field(default=None, gt=0, description="wall-clock cap; training stops early when reached")
    batch_size: int = Field(default=16, ge=1)
    lr: float = Field(default=3e-3, gt=0)
    min_lr_ratio: float = Field(default=0.1, ge=0, le=1, description="cosine decays to lr·min_lr_ratio")
    warmup_steps: int | None = Field(default=None, ge=0, description="linear warm-up; default 10% of steps")
    weight_decay: float = Field(default=0.1, ge=0)
    beta1: float = Field(default=0.9, ge=0, lt=1)
    beta2: float = Field(default=0.95, ge=0, lt=1)
    grad_clip: float = Field(default=1.0, ge=0, description="max global gradient norm; 0 disables")
    eval_every: int = Field(default=50, ge=1, description="steps between validation evaluations (pruning points)")
    eval_batches: int = Field(default=8, ge=1, description="validation batches per evaluation (fixed across runs)")
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1, description="replicates")
    device: str = Field(default="auto", description="auto (cuda, then mps, then cpu) | cpu | cuda | cuda:1 | mps")
    precision: Literal["auto", "fp32", "bf16"] = Field(default="auto", description="auto: bf16 autocast on CUDA, fp32 on CPU")
    checkpoint_every: int | None = Field(
        default=None, ge=1,
        description="save model, optimizer, schedule and sampler state every N steps and at the end; a killed run resumes",
    )
    compile: bool = Field(default=False, description="torch.compile the whole model for training (eager fallback, "
                                                  "with one line saying why, if it cannot be compiled)")

    @model_validator(mode="after")
    def _one_budget(self) -> TrainSpec:
        if self.tokens is not None and self.flops is not None:
            raise ValueError("set one budget: tokens or flops, not both")
        return self


class RangeSpec(_Section):
    low: float
    high: float
    log: bool = False
    step: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> RangeSpec:
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        return self


class MatchSpec(_Section):
    """``study.match``: what every configuration is matched on (see deconstruct/study/_match.py)."""

    params: Literal["mlp_ratio", "d_model", "none"] = Field(
        default="none", description="what absorbs a configuration's parameter difference to the baseline (the spec as written)"
    )
    tolerance: float = Field(default=0.02, gt=0, lt=1, description="largest relative parameter difference allowed")


class StudySpec(_Section):
    sampler: Literal["grid", "bruteforce", "tpe", "random", "nsga2"] = "grid"
    pruner: Literal["median", "hyperband", "none"] = "none"
    objective: str | list[str] = "val_loss"
    direction: str | list[str] = "minimize"
    n_trials: int | None = Field(default=None, ge=1, description="default: the grid size for grid/bruteforce, else 20")
    timeout: float | None = Field(default=None, gt=0)
    match: MatchSpec = Field(default_factory=MatchSpec, description="parameter matching: {params: mlp_ratio | d_model | none, tolerance: 0.02}")

    @property
    def objectives(self) -> list[str]:
        return [self.objective] if isinstance(self.objective, str) else list(self.objective)

    @property
    def directions(self) -> list[str]:
        d = [self.direction] if isinstance(self.direction, str) else list(self.direction)
        return d * len(self.objectives) if len(d) == 1 else d

    @model_validator(mode="after")
    def _match(self) -> StudySpec:
        for d in self.directions:
            if d not in ("minimize", "maximize"):
                raise ValueError(f"direction must be minimize or maximize, not {d!r}")
        if len(self.directions) != len(self.objectives):
            raise ValueError(f"{len(self.objectives)} objectives but {len(self.directions)} directions")
        return self


class Spec(_Section):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$", max_length=200, description="study name")
    description: str = ""
    task: TaskSpec = Field(default_factory=TaskSpec)
    model: ModelSpec = Field(default_factory=ModelSpec)
    train: TrainSpec = Field(default_factory=TrainSpec)
    search: dict[str, list[Any] | RangeSpec] = Field(default_factory=dict)
    study: StudySpec = Field(default_factory=StudySpec)
