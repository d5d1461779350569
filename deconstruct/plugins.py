"""Plugin manager and the registry of mixers, channel mixers and tasks.

Built-ins and third-party plugins go through the same hooks. Import failures and name collisions become
:class:`PluginError` lines (collisions) or entries in :attr:`Registry.broken` (imports) — never a crash of
the whole CLI.
"""

from __future__ import annotations

import difflib
import importlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

import pluggy

from deconstruct import hookspecs
from deconstruct._errors import PluginError

ENTRY_POINT_GROUP = "deconstruct"
BUILTIN = "deconstruct (built-in)"

#: Modules whose hooks register the built-in variants, exactly as a third-party plugin would.
DEFAULT_PLUGINS: tuple[str, ...] = (
    "deconstruct.builtin.attention",
    "deconstruct.builtin.mlp_mixer",
    "deconstruct.builtin.presets",
    "deconstruct.builtin.channel_mixers",
    "deconstruct.builtin.tasks",
)

Kind = Literal["mixer", "channel_mixer", "task"]
PATTERNS = ("causal_self", "noncausal_self", "causal_cross", "noncausal_cross")


@dataclass(frozen=True)
class Entry:
    """One registered name. A preset has ``preset`` set (its base kind and fixed options) and no build."""

    kind: Kind
    name: str
    plugin: str
    build: Callable[..., Any] | None = None
    options: type | None = None
    summary: str = ""
    paper: str = ""
    preset: Mapping[str, Any] | None = None
    patterns: tuple[str, ...] = ("causal_self",)

    @property
    def doc(self) -> str:
        return self.summary or (self.build.__doc__ or "").strip().splitlines()[0] if self.build else self.summary


@dataclass
class PluginInfo:
    name: str
    version: str
    module: str
    builtin: bool
    hooks: list[str] = field(default_factory=list)


@dataclass
class Registry:
    entries: dict[Kind, dict[str, Entry]] = field(
        default_factory=lambda: {"mixer": {}, "channel_mixer": {}, "task": {}}
    )
    plugins: dict[str, PluginInfo] = field(default_factory=dict)
    broken: dict[str, str] = field(default_factory=dict)  # plugin name -> one-line reason
    conflicts: dict[tuple[Kind, str], tuple[str, str]] = field(default_factory=dict)
    pm: pluggy.PluginManager | None = None

    # -- registration -----------------------------------------------------------------------------------
    def _register(self, kind: Kind, plugin: str, name: str, **kw: Any) -> None:
        table = self.entries[kind]
        if name in table:  # keep the first, remember the clash; using the name is then an error
            self.conflicts[(kind, name)] = (table[name].plugin, plugin)
            return
        for p in kw.get("patterns", ()):
            if p not in PATTERNS:
                raise PluginError(f"{plugin}: {kind} {name!r} declares unknown pattern {p!r} (one of {PATTERNS})")
        if kw.get("build") is None and kw.get("preset") is None:
            raise PluginError(f"{plugin}: {kind} {name!r} needs build=… (or preset=… for a mixer preset)")
        table[name] = Entry(kind=kind, name=name, plugin=plugin, **kw)

    def register_callback(self, kind: Kind, plugin: str) -> Callable[..., None]:
        def register(name: str, **kw: Any) -> None:
            self._register(kind, plugin, name, **kw)

        return register

    # -- lookup -----------------------------------------------------------------------------------------
    def names(self, kind: Kind) -> list[str]:
        return sorted(self.entries[kind])

    def get(self, kind: Kind, name: str) -> Entry:
        table = self.entries[kind]
        if (kind, name) in self.conflicts:
            raise PluginError(self.conflict_message(kind, name))
        if name not in table:
            raise PluginError(self.unknown_message(kind, name))
        return table[name]

    def conflict_message(self, kind: Kind, name: str) -> str:
        first, second = self.conflicts[(kind, name)]
        return (
            f"{kind.replace('_', ' ')} {name!r} is registered twice: by {first!r} and by {second!r}; "
            f"uninstall one or choose with DECONSTRUCT_LOAD_PLUGINS"
        )

    def problems(self) -> list[str]:
        """One line per broken plugin or name clash, for the CLI to print as warnings."""
        lines = [f"plugin {name!r} is disabled: {why}" for name, why in sorted(self.broken.items())]
        lines += [self.conflict_message(k, n) for (k, n) in sorted(self.conflicts)]
        return lines

    def unknown_message(self, kind: Kind, name: str) -> str:
        known = self.names(kind)
        close = difflib.get_close_matches(str(name), known, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        msg = f"unknown {kind.replace('_', ' ')} {name!r}: {hint}registered: {', '.join(known)}"
        if self.broken:
            msg += f" (plugins that failed to load: {', '.join(sorted(self.broken))})"
        return msg

    def resolve_mixer(self, name: str) -> tuple[Entry, dict[str, Any]]:
        """Follow presets down to a buildable mixer: (base entry, options fixed by the preset chain)."""
        entry, fixed = self.get("mixer", name), {}
        seen = {name}
        while entry.preset is not None:
            preset = dict(entry.preset)
            base = preset.pop("kind")
            fixed = {**preset, **fixed}
            if base in seen:
                raise PluginError(f"mixer preset {name!r} refers to itself through {base!r}")
            seen.add(base)
            entry = self.get("mixer", base)
        return entry, fixed

    def plugin_version(self, plugin: str) -> str:
        info = self.plugins.get(plugin)
        return info.version if info else "?"


def _load_plugin_list() -> list[str] | None:
    """DECONSTRUCT_LOAD_PLUGINS=name1,name2 limits the entry points loaded; set but empty loads none."""
    raw = os.environ.get("DECONSTRUCT_LOAD_PLUGINS")
    if raw is None:
        return None
    return [p.strip() for p in raw.split(",") if p.strip()]


def _entry_points() -> list[Any]:
    from importlib.metadata import entry_points

    return list(entry_points(group=ENTRY_POINT_GROUP))


def build_registry(extra_plugins: tuple[Any, ...] = ()) -> Registry:
    """Load built-in and installed plugins and call their hooks. ``extra_plugins`` are objects or modules
    registered after the built-ins (tests use this to add a plugin without installing it)."""
    from deconstruct import __version__

    reg = Registry()
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    reg.pm = pm

    def add(obj: Any, name: str, version: str, builtin: bool) -> None:
        try:
            pm.register(obj, name=name)
        except Exception as exc:  # pluggy validates hook names/signatures here
            reg.broken[name] = f"{type(exc).__name__}: {exc}"
            return
        hooks = sorted(h.name for h in (pm.get_hookcallers(obj) or []))
        reg.plugins[name] = PluginInfo(name, version, getattr(obj, "__name__", repr(obj)), builtin, hooks)

    for modname in DEFAULT_PLUGINS:
        add(importlib.import_module(modname), modname, __version__, True)

    wanted = _load_plugin_list()
    for ep in _entry_points():
        if wanted is not None and ep.name not in wanted:
            continue
        dist = getattr(ep, "dist", None)
        version = getattr(dist, "version", "?") if dist else "?"
        try:
            obj = ep.load()
        except Exception as exc:
            reg.broken[ep.name] = f"failed to import {ep.value!r}: {type(exc).__name__}: {exc}"
            continue
        add(obj, ep.name, version, False)

    for obj in extra_plugins:
        name = getattr(obj, "__name__", None) or type(obj).__name__
        add(obj, name, "local", False)

    # Call hooks plugin by plugin so each registration is attributed to the plugin that made it.
    for hook_name, kind in (
        ("register_mixers", "mixer"),
        ("register_channel_mixers", "channel_mixer"),
        ("register_tasks", "task"),
    ):
        caller = getattr(pm.hook, hook_name)
        for impl in reversed(caller.get_hookimpls()):  # pluggy lists last-registered first
            if impl.plugin_name in reg.broken:
                continue
            try:
                impl.function(register=reg.register_callback(kind, impl.plugin_name))  # type: ignore[arg-type]
            except Exception as exc:
                reg.broken[impl.plugin_name] = f"{hook_name} raised {type(exc).__name__}: {exc}"
    return reg


@lru_cache(maxsize=1)
def get_registry() -> Registry:
    """The process-wide registry (built once)."""
    return build_registry()


def reset_registry() -> None:
    """Forget the cached registry (tests that install or disable plugins call this)."""
    get_registry.cache_clear()
