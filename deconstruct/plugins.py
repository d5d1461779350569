"""Plugin manager and the registry of mixers, channel mixers and tasks.

A registered ``build`` is a callable or an import string ``"package.module:Class"`` that :meth:`Entry.make`
imports on first use, so registering imports no torch. Resolution (:mod:`deconstruct.spec`) looks each name
up once and keeps the :class:`Entry` in its plans; the model, the task and :func:`plugins_for` use those.

Built-ins and third-party plugins go through the same pluggy hooks (:mod:`deconstruct.hookspecs`). Built-ins
are the modules in :data:`DEFAULT_PLUGINS`; third-party plugins are the entry points of group
``deconstruct`` (``DECONSTRUCT_LOAD_PLUGINS=name1,name2`` limits which load; set but empty loads none).

Nothing a plugin does takes the CLI down. Each problem becomes one line in :meth:`Registry.problems`:

- a plugin that fails to import, fails pluggy's validation or raises in a hook is *disabled*
  (:attr:`Registry.broken`) and whatever it had registered is removed;
- a name registered twice (:attr:`Registry.conflicts`): a built-in keeps its name and the plugin's
  registration is ignored; between two third-party plugins neither wins, and a spec that uses the name gets
  an error naming both;
- a spec naming something no plugin registered gets "did you mean …? registered: …"
  (:meth:`Registry.unknown_message`).
"""

from __future__ import annotations

import difflib
import importlib
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal, cast

import pluggy

from deconstruct import hookspecs
from deconstruct._errors import PluginError

ENTRY_POINT_GROUP = "deconstruct"
LOAD_ENV = "DECONSTRUCT_LOAD_PLUGINS"

#: Modules whose hooks register the built-in variants, exactly as a third-party plugin would.
DEFAULT_PLUGINS: tuple[str, ...] = (
    "deconstruct.builtin.attention",
    "deconstruct.builtin.mlp_mixer",
    "deconstruct.builtin.presets",
    "deconstruct.builtin.channel_mixers",
    "deconstruct.builtin.differential",
    "deconstruct.builtin.moh",
    "deconstruct.builtin.window",
    "deconstruct.builtin.biformer",
    "deconstruct.builtin.channel_attention",
    "deconstruct.builtin.combiner",
    "deconstruct.builtin.sparsifiner",
    "deconstruct.builtin.rectified",
    "deconstruct.builtin.span_search",
    "deconstruct.builtin.sinks",
    "deconstruct.builtin.bam",
    "deconstruct.builtin.reversed",
    "deconstruct.builtin.tasks",
)

Kind = Literal["mixer", "channel_mixer", "task"]
KINDS: tuple[Kind, ...] = ("mixer", "channel_mixer", "task")
PATTERNS = ("causal_self", "noncausal_self", "causal_cross", "noncausal_cross")
_REGISTER_HOOKS: tuple[tuple[str, Kind], ...] = (
    ("register_mixers", "mixer"),
    ("register_channel_mixers", "channel_mixer"),
    ("register_tasks", "task"),
)


#: ``build="package.module:Attribute"``: imported on first build, so a hook module never imports torch.
_IMPORT_STRING = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")


def _import_target(target: str) -> Callable[..., Any]:
    """``"package.module:Attr.sub"`` -> the object it names (what a string ``build`` stands for)."""
    module_name, _, attr = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"{target!r} is a {type(obj).__name__}, not a class or function")
    return cast("Callable[..., Any]", obj)


@dataclass(frozen=True)
class Entry:
    """One registered name. A preset has ``preset`` set (its base kind and fixed options) and no build.

    ``build`` is a callable or an import string ``"package.module:Class"``, imported by :meth:`make` on first
    use. ``mixes_tokens`` (mixers only) is False for a token-wise mixer such as ``mlp``, which never lets
    one position see another; a preset mixes tokens as its base does (:meth:`Registry.mixes_tokens`)."""

    kind: Kind
    name: str
    plugin: str
    build: Callable[..., Any] | str | None = None
    options: type | None = None
    summary: str = ""
    paper: str = ""
    preset: Mapping[str, Any] | None = None
    patterns: tuple[str, ...] = ("causal_self",)
    mixes_tokens: bool = True
    version: str = "?"  # the providing plugin's version, filled in by the registry at registration

    def make(self, *args: Any) -> Any:
        """Call ``build`` (a mixer's with ``(ctx, options)``, a task's with ``(options)``), importing an
        import string first."""
        build = self.build
        if build is None:
            raise PluginError(f"{self.kind} {self.name!r} is a preset of {self.preset and self.preset['kind']!r}: build that")
        if isinstance(build, str):
            try:
                build = _import_target(build)
            except Exception as exc:  # the plugin's own bug, said in one line with whose it is
                raise PluginError(
                    f"{self.kind} {self.name!r} of plugin {self.plugin!r}: cannot import build={build!r}: "
                    f"{type(exc).__name__}: {_one_line(str(exc))}"
                ) from None
        return build(*args)

    @property
    def doc(self) -> str:
        """The summary, else the first line of ``build``'s docstring (not imported for: an import string)."""
        if self.summary or isinstance(self.build, str):
            return self.summary
        lines = (getattr(self.build, "__doc__", None) or "").strip().splitlines()
        return lines[0] if lines else ""


@dataclass
class PluginInfo:
    name: str  # entry-point name (third party) or module name (built-in)
    version: str  # distribution version; deconstruct's own for built-ins
    module: str  # what was imported
    builtin: bool
    hooks: list[str] = field(default_factory=list)
    package: str = ""  # distribution that provides it ("" for built-ins and local objects)


@dataclass
class Registry:
    entries: dict[Kind, dict[str, Entry]] = field(default_factory=lambda: {k: {} for k in KINDS})
    plugins: dict[str, PluginInfo] = field(default_factory=dict)  # every plugin found, broken ones included
    broken: dict[str, str] = field(default_factory=dict)  # plugin name -> one-line reason
    #: (kind, name) -> every plugin that registered it, first (the holder, if built-in) first
    conflicts: dict[tuple[Kind, str], tuple[str, ...]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # other one-line notes (e.g. a plugin with no hooks)
    #: installed plugins that DECONSTRUCT_LOAD_PLUGINS leaves out (not loaded, so what they provide is unknown)
    excluded: dict[str, PluginInfo] = field(default_factory=dict)
    pm: pluggy.PluginManager | None = None

    # -- registration -----------------------------------------------------------------------------------
    def _register(self, kind: Kind, plugin: str, name: str, **kw: Any) -> None:
        if not isinstance(name, str) or not name or any(c.isspace() for c in name):
            raise PluginError(f"{plugin}: {kind} name {name!r} must be a non-empty string without spaces")
        unknown = set(kw) - {"build", "options", "summary", "paper", "preset", "patterns", "mixes_tokens"}
        if unknown:
            raise PluginError(f"{plugin}: register({name!r}, …) got unknown keyword {sorted(unknown)[0]!r}")
        build = kw.get("build")
        if isinstance(build, str) and not _IMPORT_STRING.match(build):
            raise PluginError(f"{plugin}: {kind} {name!r}: build={build!r} must be 'package.module:Class' (or a callable)")
        if build is not None and not isinstance(build, str) and not callable(build):
            raise PluginError(f"{plugin}: {kind} {name!r}: build must be a callable or 'package.module:Class', got {type(build).__name__}")
        if "mixes_tokens" in kw:
            if kind != "mixer" or kw.get("preset") is not None:
                raise PluginError(f"{plugin}: {kind} {name!r}: mixes_tokens applies to a buildable mixer (a preset mixes as its base does)")
            if not isinstance(kw["mixes_tokens"], bool):
                raise PluginError(f"{plugin}: mixer {name!r}: mixes_tokens must be True or False")
        for p in kw.get("patterns", ()):
            if p not in PATTERNS:
                raise PluginError(f"{plugin}: {kind} {name!r} declares unknown pattern {p!r} (one of {PATTERNS})")
        if "patterns" in kw:
            kw["patterns"] = tuple(kw["patterns"])
        if kw.get("build") is None and kw.get("preset") is None:
            raise PluginError(f"{plugin}: {kind} {name!r} needs build=… (or preset=… for a mixer preset)")
        if kw.get("preset") is not None and (kind != "mixer" or "kind" not in kw["preset"]):
            raise PluginError(f"{plugin}: preset {name!r} must be a mixer preset with a 'kind' key")
        table = self.entries[kind]
        if name in table:  # keep the first and remember the clash (see conflict_message)
            key = (kind, name)
            self.conflicts[key] = (*self.conflicts.get(key, (table[name].plugin,)), plugin)
            return
        table[name] = Entry(kind=kind, name=name, plugin=plugin, version=self.plugin_version(plugin), **kw)

    def register_callback(self, kind: Kind, plugin: str) -> Callable[..., None]:
        def register(name: str, **kw: Any) -> None:
            self._register(kind, plugin, name, **kw)

        return register

    def _disable(self, plugin: str, reason: str) -> None:
        """Mark ``plugin`` broken (one line) and drop whatever it had registered."""
        self.broken[plugin] = _one_line(reason)
        for table in self.entries.values():
            for name in [n for n, e in table.items() if e.plugin == plugin]:
                del table[name]
        for key, owners in list(self.conflicts.items()):
            rest = tuple(o for o in owners if o != plugin)
            if len(rest) > 1:
                self.conflicts[key] = rest
            else:
                del self.conflicts[key]

    # -- lookup -----------------------------------------------------------------------------------------
    def is_builtin(self, plugin: str) -> bool:
        info = self.plugins.get(plugin)
        return bool(info and info.builtin)

    def names(self, kind: Kind) -> list[str]:
        """Usable names of ``kind`` (a name two third-party plugins both claim is not usable)."""
        return sorted(n for n in self.entries[kind] if not self._ambiguous(kind, n))

    def _ambiguous(self, kind: Kind, name: str) -> bool:
        owners = self.conflicts.get((kind, name))
        return owners is not None and not self.is_builtin(owners[0])

    def get(self, kind: Kind, name: str) -> Entry:
        if self._ambiguous(kind, name):
            raise PluginError(self.conflict_message(kind, name))
        table = self.entries[kind]
        if name not in table:
            raise PluginError(self.unknown_message(kind, name))
        return table[name]

    def conflict_message(self, kind: Kind, name: str) -> str:
        first, *others = self.conflicts[(kind, name)]
        what = f"{kind.replace('_', ' ')} {name!r}"
        also = " and by ".join(repr(o) for o in others)
        if self.is_builtin(first):
            return f"{what} is built in ({first!r}) and registered again by {also}; the built-in one is used"
        owners = sorted((first, *others))  # entry-point order varies between machines: neither wins
        also = " and by ".join(repr(o) for o in owners[1:])
        choose = " or ".join(f"{LOAD_ENV}={p}" for p in owners)
        return f"{what} is registered by {owners[0]!r} and by {also}; neither is used: uninstall one, or choose with {choose}"

    def problems(self) -> list[str]:
        """One line per disabled plugin, name clash or other warning, for the CLI to print."""
        lines = [f"plugin {name!r} is disabled: {why}" for name, why in sorted(self.broken.items())]
        lines += [self.conflict_message(k, n) for (k, n) in sorted(self.conflicts)]
        return lines + list(self.warnings)

    def unknown_message(self, kind: Kind, name: str) -> str:
        known = self.names(kind)
        close = difflib.get_close_matches(str(name), known, n=1, cutoff=0.5)
        hint = f"did you mean {close[0]!r}? " if close else ""
        msg = f"unknown {kind.replace('_', ' ')} {name!r}: {hint}registered: {', '.join(known) or 'none'}"
        if self.broken:
            msg += f" (plugins that failed to load: {', '.join(sorted(self.broken))})"
        elif self.excluded:
            msg += (f" (not loaded because {LOAD_ENV}={os.environ.get(LOAD_ENV, '')!r}: "
                    f"{', '.join(sorted(self.excluded))}; add the one that provides it, or unset {LOAD_ENV})")
        elif not close:
            msg += " (is the plugin that provides it installed? see `deconstruct plugins list`)"
        return msg

    def chain(self, name: str) -> list[Entry]:
        """A mixer name followed down its presets: [name's entry, …, buildable base entry]."""
        out = [self.get("mixer", name)]
        while out[-1].preset is not None:
            base = out[-1].preset["kind"]
            if base in {e.name for e in out}:
                raise PluginError(f"mixer preset {name!r} refers to itself through {base!r}")
            out.append(self.get("mixer", base))
        return out

    def resolve_mixer(self, name: str) -> tuple[Entry, dict[str, Any]]:
        """Follow presets down to a buildable mixer: (base entry, options fixed by the preset chain)."""
        entries = self.chain(name)
        return entries[-1], preset_options(entries)

    def mixes_tokens(self, name: str) -> bool:
        """Whether mixer ``name`` (a preset: its base) lets positions see each other (False: token-wise, like ``mlp``)."""
        return self.chain(name)[-1].mixes_tokens

    def plugin_version(self, plugin: str) -> str:
        info = self.plugins.get(plugin)
        return info.version if info else "?"


def preset_options(chain: list[Entry] | tuple[Entry, ...]) -> dict[str, Any]:
    """The options a preset chain (:meth:`Registry.chain`) fixes; the outermost preset wins."""
    fixed: dict[str, Any] = {}
    for entry in chain[:-1]:
        fixed = {**{k: v for k, v in (entry.preset or {}).items() if k != "kind"}, **fixed}
    return fixed


def _one_line(text: str) -> str:
    lines = [ln.strip() for ln in str(text).strip().splitlines() if ln.strip()]
    return lines[0] if lines else str(text)


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _load_plugin_list() -> list[str] | None:
    """DECONSTRUCT_LOAD_PLUGINS=name1,name2 limits the entry points loaded; set but empty loads none."""
    raw = os.environ.get(LOAD_ENV)
    if raw is None:
        return None
    return [p.strip() for p in raw.split(",") if p.strip()]


def _entry_points() -> list[Any]:
    """Entry points of group ``deconstruct``, each once (a distribution can be found twice on sys.path)."""
    from importlib.metadata import entry_points

    seen, out = set(), []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if (ep.name, ep.value) not in seen:
            seen.add((ep.name, ep.value))
            out.append(ep)
    return out


def _call_hook(impl: Any, **kwargs: Any) -> Any:
    """Call one hook implementation with the arguments it asks for (pluggy allows a subset)."""
    return impl.function(*[kwargs[a] for a in impl.argnames])


def build_registry(extra_plugins: tuple[Any, ...] = (), *, entry_points: bool = True) -> Registry:
    """Load the built-in and installed plugins and call their ``register_*`` hooks.

    ``extra_plugins`` are modules or objects registered after the installed ones (a plugin's own tests use
    this to check it before it is installed; one already loaded through its entry point is not added
    twice). ``entry_points=False`` loads the built-ins only.
    """
    from deconstruct import __version__

    reg = Registry()
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    reg.pm = pm

    def add(obj: Any, name: str, version: str, builtin: bool, package: str = "", module: str = "") -> None:
        if name in reg.plugins or name in reg.broken:
            first = reg.plugins[name].module if name in reg.plugins else "a broken one"
            reg.warnings.append(f"two plugins are named {name!r} ({first} and {module}); only the first is loaded")
            return
        try:
            pm.register(obj, name=name)
        except Exception as exc:  # pluggy validates hook names and arguments here
            if pm.has_plugin(name):
                pm.unregister(name=name)
            reg.broken[name] = _one_line(f"{type(exc).__name__}: {exc}")
            return
        callers = pm.get_hookcallers(obj) or []
        unknown = [c.name for c in callers if not c.has_spec()]
        if unknown:
            pm.unregister(name=name)
            hooks = [h for h in dir(hookspecs) if h.startswith("register_")]
            close = difflib.get_close_matches(unknown[0], hooks, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (hooks: {', '.join(hooks)})"
            reg.broken[name] = f"implements unknown hook {unknown[0]!r}{hint}"
            return
        hooks = sorted(c.name for c in callers)
        reg.plugins[name] = PluginInfo(name, version, module or getattr(obj, "__name__", repr(obj)), builtin, hooks, package)
        if not hooks:
            reg.warnings.append(f"plugin {name!r} implements no hooks (mark its functions with @deconstruct.hookimpl)")

    for modname in DEFAULT_PLUGINS:
        try:
            module = importlib.import_module(modname)
        except Exception as exc:  # a bug in a built-in is reported like a broken plugin, not a crash
            reg.broken[modname] = _one_line(f"failed to import {modname!r}: {type(exc).__name__}: {exc}")
            reg.plugins[modname] = PluginInfo(modname, __version__, modname, True, [])
            continue
        add(module, modname, __version__, True, module=modname)

    if entry_points:
        wanted = _load_plugin_list()
        found: set[str] = set()
        for ep in _entry_points():
            dist = getattr(ep, "dist", None)
            package = dist.metadata["Name"] if dist is not None else ""
            keys = {_normalise(ep.name), _normalise(package)} if package else {_normalise(ep.name)}
            found |= keys
            if wanted is not None and not keys & {_normalise(w) for w in wanted}:
                reg.excluded[ep.name] = PluginInfo(ep.name, dist.version if dist is not None else "?", ep.value,
                                                   False, [], package)
                continue
            if ep.name in reg.plugins or ep.name in reg.broken:
                add(None, ep.name, "?", False, package, ep.value)  # records the clash of names
                continue
            version = dist.version if dist is not None else "?"
            try:
                obj = ep.load()
            except Exception as exc:  # SyntaxError, ImportError, anything raised at import
                reg.broken[ep.name] = _one_line(f"failed to import {ep.value!r}: {type(exc).__name__}: {exc}")
                reg.plugins[ep.name] = PluginInfo(ep.name, version, ep.value, False, [], package)  # for `plugins list`
                continue
            add(obj, ep.name, version, False, package, ep.value)
        for w in wanted or ():
            if _normalise(w) not in found:
                reg.warnings.append(f"{LOAD_ENV} names {w!r}, which no installed plugin provides")

    for obj in extra_plugins:
        if pm.is_registered(obj):
            continue
        name = getattr(obj, "__name__", None) or type(obj).__name__
        add(obj, name, getattr(obj, "__version__", "local"), False)

    # Call the hooks plugin by plugin, in load order, so each registration is attributed to its plugin
    # and a built-in always registers before a third-party plugin that reuses its name.
    for hook_name, kind in _REGISTER_HOOKS:
        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            if impl.plugin_name in reg.broken:
                continue
            try:
                _call_hook(impl, register=reg.register_callback(kind, impl.plugin_name))
            except Exception as exc:
                reg._disable(impl.plugin_name, f"{hook_name} raised {type(exc).__name__}: {exc}")
    return reg


def add_plugin_commands(app: Any, registry: Registry | None = None) -> None:
    """Call every working plugin's ``register_commands(app)``; one that raises is marked broken."""
    reg = registry or get_registry()
    if reg.pm is None:
        return
    for impl in reg.pm.hook.register_commands.get_hookimpls():
        if impl.plugin_name in reg.broken:
            continue
        try:
            _call_hook(impl, app=app)
        except Exception as exc:  # a broken plugin never takes the CLI down
            reg._disable(impl.plugin_name, f"register_commands raised {type(exc).__name__}: {exc}")


def plugins_for(resolved: Any) -> list[dict[str, Any]]:
    """The plugins that provide what a resolved spec uses — every layer's mixer (and the presets it goes
    through), channel mixer, and the task — in order of first use, as
    ``[{"name": …, "version": …, "provides": ["mixer:attention", "task:stdlib", …]}]`` (``provides`` sorted).
    Each also has ``source``, a hash of the providing package's source files (see :mod:`deconstruct._code`).
    Stored with every run, so a result can be traced to the code that produced it. Read from the entries
    resolution kept (:attr:`LayerPlan.mixer_entries` …), so no name is looked up again."""
    from deconstruct._code import source_hash

    provides: dict[str, set[str]] = {}  # plugin -> "kind:name"; dicts keep the order of first use
    versions: dict[str, str] = {}
    sources: dict[str, str] = {}  # a hash of the plugin's source files: an edit without a version bump shows

    def add(entry: Entry) -> None:
        provides.setdefault(entry.plugin, set()).add(f"{entry.kind}:{entry.name}")
        versions.setdefault(entry.plugin, entry.version)
        if entry.plugin not in sources:
            build = entry.build
            module = build.split(":", 1)[0] if isinstance(build, str) else getattr(build, "__module__", None)
            module = module or _plugin_module(entry.plugin)
            sources[entry.plugin] = source_hash(module) if module else ""

    for plan in resolved.layers:
        for entry in plan.mixer_entries:
            add(entry)
        add(plan.channel_entry)
    add(resolved.task_entry)
    return [{"name": n, "version": versions[n], "source": sources[n], "provides": sorted(v)} for n, v in provides.items()]


def _plugin_module(plugin: str) -> str:
    """The module a plugin was loaded from (built-ins are named by their module)."""
    info = get_registry().plugins.get(plugin)
    return info.module if info is not None else plugin


@lru_cache(maxsize=1)
def get_registry() -> Registry:
    """The process-wide registry (built once)."""
    return build_registry()


def reset_registry() -> None:
    """Forget the cached registry (tests that install or disable plugins call this)."""
    get_registry.cache_clear()
