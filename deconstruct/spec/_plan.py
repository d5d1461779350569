"""What a validated spec resolves to: one plan per layer, and the context each mixer is built in."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from pydantic import BaseModel

if TYPE_CHECKING:
    from deconstruct.plugins import Entry
    from deconstruct.tasks import TaskOptions


@dataclass(frozen=True)
class MixerContext:
    """Everything a mixer may know about where it sits. Passed to every ``build(ctx, options)``."""

    d_model: int  # residual width d
    heads: int  # h
    layer_index: int  # 0-based position of this block
    n_layers: int  # L
    max_seq_len: int  # T_max (the task's sequence length)
    causal: bool = True  # causal self-attention (lm, mqar) or bidirectional (cloze)
    positions: str = "learned"  # learned | rope | none — mixers that see q/k apply rope themselves
    backend: str = "auto"  # attention kernel request (auto | eager | sdpa | triton | compile)
    bias: bool = False
    mlp_ratio: float = 4.0
    dropout: float = 0.0
    token_inputs: bool = True  # the task feeds token ids (False: real vectors through a read-in, e.g. icl_regression)
    standard_kv_heads: int | None = None  # key/value heads of the model's standard attention (GQA), for parameter matching

    @property
    def head_dim(self) -> int:  # d_h = d / h
        return self.d_model // self.heads


@dataclass(frozen=True)
class LayerPlan:
    """The resolved mixer of one layer (1-based ``index``, as in the paper's layer numbers)."""

    index: int
    mixer: str  # the name the spec used (may be a preset)
    base: str  # the buildable mixer the preset resolves to
    options: BaseModel  # validated options of ``base``
    standard: bool  # equals the spec's standard mixer (False: a relaxed layer)
    channel_mixer: str
    channel_options: BaseModel | None
    # The registry entries resolution found, so building and tracing never look the names up again.
    # Not part of the configuration: excluded from describe()/config(), the hash and equality.
    mixer_entries: tuple[Entry, ...] = field(default=(), compare=False, repr=False)  # the spec's name … base
    channel_entry: Entry | None = field(default=None, compare=False, repr=False)

    @property
    def mixer_entry(self) -> Entry:
        """The buildable mixer (the end of the preset chain)."""
        return self.mixer_entries[-1]

    @property
    def mixes_tokens(self) -> bool:
        """False for a token-wise mixer (``mlp``, or a plugin's declared ``mixes_tokens=False``)."""
        return self.mixer_entry.mixes_tokens

    def options_dict(self) -> dict[str, Any]:
        return self.options.model_dump(mode="json")

    def describe(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "mixer": self.mixer,
            "base": self.base,
            "options": self.options_dict(),
            "standard": self.standard,
            "channel_mixer": self.channel_mixer,
        }


@dataclass(frozen=True)
class ResolvedSpec:
    """A spec after validation, overrides and layout resolution: what a run needs, nothing to re-check."""

    spec: Any  # deconstruct.spec.Spec
    layers: tuple[LayerPlan, ...]
    task_options: BaseModel
    source: str = ""  # original YAML text ("" when built in code)
    overrides: tuple[str, ...] = field(default_factory=tuple)
    task_entry: Entry | None = field(default=None, compare=False, repr=False)  # as for LayerPlan's entries

    @property
    def name(self) -> str:
        return str(self.spec.name)

    def context(self, layer: LayerPlan | int) -> MixerContext:
        m = self.spec.model
        index = layer.index if isinstance(layer, LayerPlan) else layer
        return MixerContext(
            d_model=m.d_model,
            heads=m.heads,
            layer_index=index - 1,
            n_layers=m.layers,
            max_seq_len=int(cast("TaskOptions", self.task_options).seq_len),
            causal=bool(getattr(self.task_options, "causal", True)),
            positions=m.positions,
            backend=m.backend,
            bias=m.bias,
            mlp_ratio=m.mlp_ratio,
            dropout=m.dropout,
            token_inputs=bool(getattr(self.task_options, "token_inputs", True)),
            standard_kv_heads=m.standard.options.get("kv_heads"),
        )

    @property
    def relaxed_layers(self) -> list[int]:
        return [p.index for p in self.layers if not p.standard]

    def config(self) -> dict[str, Any]:
        """The resolved configuration as plain data (what is hashed and stored). Seeds and checkpointing are
        excluded: neither changes what a run computes."""
        model = self.spec.model.model_dump(mode="json", exclude={"mixer", "standard", "layout", "standard_layers", "overrides"})
        if not model.get("parallel"):  # the default leaves the hash of every earlier configuration unchanged
            model.pop("parallel", None)
        train = self.spec.train.model_dump(mode="json", exclude={"seeds", "checkpoint_every", "compile"})  # how, not what
        return {
            "task": {"name": self.spec.task.name, **self.task_options.model_dump(mode="json")},
            "model": model,
            "layers": [p.describe() for p in self.layers],
            "train": train,
        }

    def config_hash(self) -> str:
        blob = json.dumps(self.config(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]
