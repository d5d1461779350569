"""What the report takes from the plugin registry and the spec, never from a list of names of its own.

- :func:`token_wise`: a mixer registered with ``mixes_tokens=False`` (the built-in ``mlp``, or a plugin's
  token-wise mixer) has no attention map, so its layers' missing diagnostics are explained, not flagged.
- :func:`standard_value`: the default ``--by`` baseline of an axis. On a token-mixer node (``model.mixer…``,
  ``model.overrides.N…``, ``model.layout.N…``) it is the value whose resolved configuration has those layers
  marked ``standard`` (the resolution compared them with the spec's ``model.standard`` mixer, see
  :class:`deconstruct.spec.LayerPlan`): ``attention``, its alias preset ``standard``, ``form: softmax``,
  ``qk: separate``, … On any other model key it is the schema's default (``layout: uniform``,
  ``positions: learned``). Elsewhere (``train.lr``) there is none.
"""

from __future__ import annotations

from typing import Any


def token_wise(mixer: str | None) -> bool:
    """Whether the registered mixer ``mixer`` mixes nothing across positions (:meth:`Registry.mixes_tokens`).
    A name the registry cannot resolve here (its plugin not installed) is not known to be token-wise."""
    if mixer is None:
        return False
    from deconstruct._errors import PluginError
    from deconstruct.plugins import get_registry

    try:
        return not get_registry().mixes_tokens(mixer)
    except PluginError:
        return False


def _parse(axis: str) -> list[Any]:
    return [int(k) if k.lstrip("-").isdigit() else k for k in axis.split(".")]


def _mixer_layers(keys: list[Any]) -> int | bool:
    """Which layers a token-mixer axis sets: ``True`` for every layer the spec's mixer feeds, a 1-based layer
    index for one layer, ``False`` when ``keys`` is not a token-mixer node (or inside one)."""
    if keys[:2] == ["model", "mixer"]:
        return True
    if len(keys) >= 3 and keys[:2] == ["model", "overrides"] and isinstance(keys[2], int):
        return keys[2]
    if len(keys) >= 3 and keys[:2] == ["model", "layout"] and isinstance(keys[2], int):
        return keys[2] + 1  # an explicit layout list is 0-indexed in the spec, layers are 1-based
    return False


def _all_standard(config: dict[str, Any], layer: int | bool) -> bool:
    layers = [x for x in (config or {}).get("layers") or [] if isinstance(x, dict)]
    if layer is not True:
        layers = [x for x in layers if x.get("index") == layer]
    return bool(layers) and all(x.get("standard") is True for x in layers)


def standard_value(axis: str, values: list[Any], points: list[tuple[dict[str, Any], dict[str, Any]]]) -> Any:
    """The standard value of ``axis`` among ``values`` (see the module docstring), or None. ``points``: each
    search point with the resolved configuration it ran (the stored ``config``)."""
    keys = _parse(axis)
    layer = _mixer_layers(keys)
    if layer is not False:
        for v in values:
            if any(p.get(axis) == v and _all_standard(config, layer) for p, config in points if axis in p):
                return v
        return None
    if len(keys) == 2 and keys[0] == "model":
        from deconstruct.spec import ModelSpec

        info = ModelSpec.model_fields.get(str(keys[1]))
        default = info.default if info is not None else None
        if isinstance(default, str) and default in values:
            return default
    return None
