"""The model: a pre-norm decoder whose every token mixer comes from the plugin registry."""

from deconstruct.model._attend import attend, attention_eager, pick_backend
from deconstruct.model._layers import RMSNorm, Rotary, make_norm
from deconstruct.model._transformer import Block, Transformer, build_model
from deconstruct.spec import MixerContext

__all__ = [
    "Block",
    "MixerContext",
    "RMSNorm",
    "Rotary",
    "Transformer",
    "attend",
    "attention_eager",
    "build_model",
    "make_norm",
    "pick_backend",
]
