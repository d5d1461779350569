"""Spec: validation of study YAML files and their resolution into per-layer plans.

Resolution takes the plugin registry (default: the installed plugins) and is the only step that looks names
up: each :class:`LayerPlan` keeps the registry entries of its mixer (through its presets) and channel mixer,
and :class:`ResolvedSpec` that of its task, outside ``config()`` and the config hash."""

from deconstruct.spec._layouts import PRESETS as LAYOUT_PRESETS
from deconstruct.spec._layouts import standard_layers
from deconstruct.spec._plan import LayerPlan, MixerContext, ResolvedSpec
from deconstruct.spec._resolve import apply_override, load_spec, resolve, set_path
from deconstruct.spec._schema import MixerSpec, ModelSpec, RangeSpec, Spec, StudySpec, TaskSpec, TrainSpec

__all__ = [
    "LAYOUT_PRESETS",
    "LayerPlan",
    "MixerContext",
    "MixerSpec",
    "ModelSpec",
    "RangeSpec",
    "ResolvedSpec",
    "Spec",
    "StudySpec",
    "TaskSpec",
    "TrainSpec",
    "apply_override",
    "load_spec",
    "resolve",
    "set_path",
    "standard_layers",
]
