"""The model: a pre-norm decoder whose every token mixer comes from the plugin registry."""

from deconstruct.model._attend import attend, attention_eager, pick_backend, triton_runs_on
from deconstruct.model._bench import BACKENDS as MIXER_BENCH_BACKENDS
from deconstruct.model._bench import benchmark_mixers
from deconstruct.model._cost import TRAIN_FLOPS_FACTOR, ModelCost, model_cost
from deconstruct.model._layers import RMSNorm, Rotary, make_norm
from deconstruct.model._transformer import Block, Transformer, build_model
from deconstruct.spec import MixerContext

__all__ = [
    "MIXER_BENCH_BACKENDS",
    "benchmark_mixers",
    "Block",
    "ModelCost",
    "MixerContext",
    "RMSNorm",
    "TRAIN_FLOPS_FACTOR",
    "Rotary",
    "Transformer",
    "attend",
    "attention_eager",
    "build_model",
    "make_norm",
    "model_cost",
    "pick_backend",
    "triton_runs_on",
]
