"""The plugin manager: discovery through entry points, DECONSTRUCT_LOAD_PLUGINS, and every failure mode
as one line (never a crash). Plugins here are fake installed distributions on sys.path (see conftest)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import _support
import pytest

from deconstruct import PluginError, SpecError, hookimpl
from deconstruct.plugins import DEFAULT_PLUGINS, build_registry, get_registry, plugins_for
from deconstruct.spec import load_spec


def tiny_spec(mixer: object = "attention", **model: object) -> dict:
    return _support.tiny_spec(mixer, task={"seq_len": 16}, heads=4, **model)


def test_builtins_register_through_the_hooks_in_load_order() -> None:
    reg = build_registry(entry_points=False)
    assert list(reg.plugins)[: len(DEFAULT_PLUGINS)] == list(DEFAULT_PLUGINS)
    assert all(reg.plugins[m].builtin for m in DEFAULT_PLUGINS)
    assert reg.get("mixer", "attention").plugin == "deconstruct.builtin.attention"
    assert reg.get("channel_mixer", "mlp").plugin == "deconstruct.builtin.channel_mixers"
    assert reg.problems() == []


def test_entry_point_plugin_is_found_with_its_version(make_dist, on_path) -> None:
    on_path(make_dist("deconstruct-ema", {"ema": "ema_a"}, ("ema_a",), version="2.3"))
    reg = get_registry()
    assert reg.get("mixer", "ema").plugin == "ema"
    info = reg.plugins["ema"]
    assert (info.version, info.package, info.module, info.builtin) == ("2.3", "deconstruct-ema", "ema_a", False)
    assert info.hooks == ["register_mixers"]
    resolved = load_spec(tiny_spec({"kind": "ema", "decay": 0.5}))
    assert resolved.layers[0].options.decay == 0.5


def test_load_plugins_env_limits_entry_points(make_dist, on_path, monkeypatch) -> None:
    on_path(make_dist("deconstruct-ema", {"ema": "ema_a"}, ("ema_a",)), make_dist("bad", {"bad": "broken_at_import"}, ("broken_at_import",)))
    monkeypatch.setenv("DECONSTRUCT_LOAD_PLUGINS", "")  # set but empty: no third-party plugin at all
    reg = build_registry()
    assert [p for p in reg.plugins if not reg.plugins[p].builtin] == [] and reg.broken == {}
    monkeypatch.setenv("DECONSTRUCT_LOAD_PLUGINS", "ema")  # by entry-point name: the broken one is not imported
    reg = build_registry()
    assert "ema" in reg.plugins and reg.broken == {} and reg.problems() == []
    monkeypatch.setenv("DECONSTRUCT_LOAD_PLUGINS", "deconstruct_ema, nope")  # by distribution name, normalised
    reg = build_registry()
    assert "ema" in reg.plugins
    assert reg.problems() == ["DECONSTRUCT_LOAD_PLUGINS names 'nope', which no installed plugin provides"]


def test_plugin_that_raises_at_import_is_disabled_and_named(make_dist, on_path) -> None:
    on_path(make_dist("bad", {"badplug": "broken_at_import"}, ("broken_at_import",)),
            make_dist("deconstruct-ema", {"ema": "ema_a"}, ("ema_a",)))
    reg = get_registry()
    assert "ema" in reg.names("mixer")  # the others still work
    (line,) = reg.problems()
    assert line.startswith("plugin 'badplug' is disabled: failed to import 'broken_at_import': ImportError:")
    assert "not_installed_anywhere" in line and "\n" not in line
    with pytest.raises(SpecError, match="plugins that failed to load: badplug"):
        load_spec(tiny_spec("something_badplug_had"))


def test_plugin_that_raises_in_its_hook_is_disabled_and_its_names_removed(make_dist, on_path) -> None:
    on_path(make_dist("half", {"half": "raises_in_hook"}, ("raises_in_hook",)))
    reg = get_registry()
    assert "half_registered" not in reg.names("mixer")
    assert reg.problems() == ["plugin 'half' is disabled: register_mixers raised RuntimeError: something went wrong while registering"]


def test_misspelt_hook_name_is_reported_with_a_suggestion(make_dist, on_path) -> None:
    on_path(make_dist("typo", {"typo": "misspelt_hook"}, ("misspelt_hook",)))
    (line,) = get_registry().problems()
    assert line == "plugin 'typo' is disabled: implements unknown hook 'register_mixer' (did you mean 'register_mixers'?)"


def test_name_of_a_builtin_stays_builtin_and_the_clash_is_one_line(make_dist, on_path) -> None:
    on_path(make_dist("impostor", {"impostor": "collides_with_builtin"}, ("collides_with_builtin",)))
    reg = get_registry()
    assert reg.get("mixer", "attention").plugin == "deconstruct.builtin.attention"
    (line,) = reg.problems()
    assert "'attention'" in line and "'deconstruct.builtin.attention'" in line and "'impostor'" in line
    assert load_spec(tiny_spec()).layers[0].base == "attention"  # specs keep working


def test_two_plugins_with_one_name_make_it_unusable_naming_both(make_dist, on_path) -> None:
    on_path(make_dist("pa", {"ema_a": "ema_a"}, ("ema_a",)), make_dist("pb", {"ema_b": "ema_b"}, ("ema_b",)))
    reg = get_registry()
    (line,) = reg.problems()
    assert "'ema_a'" in line and "'ema_b'" in line and "DECONSTRUCT_LOAD_PLUGINS=ema_a" in line
    assert "ema" not in reg.names("mixer")
    with pytest.raises(PluginError, match="registered by 'ema_a' and by 'ema_b'"):
        reg.get("mixer", "ema")
    with pytest.raises(SpecError) as err:
        load_spec(tiny_spec("ema"))
    assert "model.mixer.kind" in str(err.value) and "ema_b" in str(err.value)


def test_unknown_mixer_lists_registered_and_suggests_nearest(make_dist, on_path) -> None:
    on_path(make_dist("deconstruct-ema", {"ema": "ema_a"}, ("ema_a",)))
    with pytest.raises(SpecError) as err:
        load_spec(tiny_spec("emma"))
    msg = str(err.value)
    assert "unknown mixer 'emma': did you mean 'ema'?" in msg
    registered = msg.split("registered: ")[1].split(", ")
    assert {"attention", "ema", "mlp"} <= set(registered) and registered == sorted(registered)
    assert msg.startswith("model.mixer.kind: ")
    with pytest.raises(SpecError, match="is the plugin that provides it installed"):
        load_spec(tiny_spec("zzzzzz"))


def test_extra_plugins_and_hooks_that_take_no_arguments() -> None:
    class Quiet:
        @hookimpl
        def register_tasks(self):  # pluggy lets an implementation take fewer arguments: fine, registers nothing
            pass

    class Nothing:
        pass

    reg = build_registry((Quiet(), Nothing()), entry_points=False)
    assert reg.broken == {}
    assert reg.problems() == ["plugin 'Nothing' implements no hooks (mark its functions with @deconstruct.hookimpl)"]


def test_registration_errors_are_clear() -> None:
    class Bad:
        @hookimpl
        def register_mixers(self, register):
            register("x", bulid=lambda ctx, o: None)

    reg = build_registry((Bad(),), entry_points=False)
    assert reg.problems() == ["plugin 'Bad' is disabled: register_mixers raised PluginError: Bad: register('x', …) got unknown keyword 'bulid'"]


def test_a_source_edit_without_a_version_bump_changes_the_source_hash(tmp_path, monkeypatch) -> None:
    from deconstruct._code import source_hash

    pkg = tmp_path / "edited_plugin_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    source_hash.cache_clear()
    before = source_hash("edited_plugin_pkg.mixer")
    (pkg / "__init__.py").write_text("X = 2\n")
    source_hash.cache_clear()
    assert before and source_hash("edited_plugin_pkg") != before
    assert source_hash("no_such_package_anywhere") == ""


def test_plugins_for_names_every_plugin_a_run_uses(make_dist, on_path) -> None:
    on_path(make_dist("deconstruct-ema", {"ema": "ema_a"}, ("ema_a",), version="0.4"))
    resolved = load_spec(tiny_spec("ema", overrides={2: "standard"}))
    from deconstruct import __version__

    used = plugins_for(resolved)
    sources = {p.pop("source") for p in used if p["name"].startswith("deconstruct.")}
    ema_file = next(p for p in map(Path, sys.path) if (p / "ema_a.py").is_file()) / "ema_a.py"
    assert used[0].pop("source") == hashlib.sha256(ema_file.read_bytes()).hexdigest()[:16]  # the plugin's own file
    assert len(sources) == 1 and len(sources.pop()) == 16  # every built-in: one hash of the deconstruct package
    assert used == [
        {"name": "ema", "version": "0.4", "provides": ["mixer:ema"]},
        {"name": "deconstruct.builtin.channel_mixers", "version": __version__, "provides": ["channel_mixer:mlp"]},
        {"name": "deconstruct.builtin.presets", "version": __version__, "provides": ["mixer:standard"]},  # a preset …
        {"name": "deconstruct.builtin.attention", "version": __version__, "provides": ["mixer:attention"]},  # … of attention
        {"name": "deconstruct.builtin.tasks", "version": __version__, "provides": ["task:lm"]},
    ]


def test_builtin_hook_modules_and_the_registry_import_no_torch() -> None:
    """Every built-in names its module by an import string, so loading them all leaves torch unimported."""
    code = (
        "import importlib, sys\n"
        "from deconstruct.plugins import DEFAULT_PLUGINS, KINDS, build_registry\n"
        "for m in DEFAULT_PLUGINS: importlib.import_module(m)\n"
        "reg = build_registry(entry_points=False)\n"
        "assert reg.problems() == [], reg.problems()\n"
        "builds = [e.build for k in KINDS for e in reg.entries[k].values() if e.preset is None]\n"
        "print(len(builds), all(isinstance(b, str) for b in builds))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    counted, modules = out.stdout.splitlines()
    count, all_strings = counted.split()
    assert int(count) >= 14 and all_strings == "True", out.stdout  # 7 mixers, 3 channel mixers, 4 tasks
    assert modules == "[]"


def test_build_by_import_string_is_imported_when_built(make_dist, on_path) -> None:
    on_path(make_dist("deconstruct-ema", {"ema": "ema_a"}, ("ema_a",)))
    reg = get_registry()
    entry = reg.get("mixer", "pointwise")
    assert entry.build == "ema_a:build_pointwise"  # kept as the string until a model is built
    resolved = load_spec(tiny_spec("pointwise"))
    assert resolved.layers[0].mixer_entry is entry
    import torch

    from deconstruct.model import build_model

    model = build_model(resolved)
    x = torch.randint(0, 256, (1, 16))
    y = x.clone()
    y[0, 3] = (y[0, 3] + 1) % 256
    with torch.no_grad():  # a token-wise mixer in every layer: changing token 3 changes no other position
        a, b = model(x), model(y)
    assert torch.equal(a[0, :3], b[0, :3]) and torch.equal(a[0, 4:], b[0, 4:])


def test_mixes_tokens_is_registry_metadata() -> None:
    reg = build_registry(entry_points=False)
    assert reg.mixes_tokens("mlp") is False
    assert reg.mixes_tokens("attention") is True and reg.mixes_tokens("window") is True
    assert reg.mixes_tokens("random_qk") is True  # a preset mixes as its base does

    class Plugin:
        @hookimpl
        def register_mixers(self, register):
            register("scale", build="math:sqrt", mixes_tokens=False)

    reg = build_registry((Plugin(),), entry_points=False)
    assert reg.mixes_tokens("scale") is False and reg.problems() == []


@pytest.mark.parametrize(("kw", "message"), [
    ({"build": "no colon here"}, "must be 'package.module:Class'"),
    ({"build": 3}, "must be a callable or 'package.module:Class', got int"),
    ({"preset": {"kind": "attention"}, "mixes_tokens": False}, "a preset mixes as its base does"),
    ({"build": "math:sqrt", "mixes_tokens": "no"}, "mixes_tokens must be True or False"),
])
def test_bad_build_or_mixes_tokens_disables_the_plugin_with_one_line(kw, message) -> None:
    class Bad:
        @hookimpl
        def register_mixers(self, register):
            register("x", **kw)

    (line,) = build_registry((Bad(),), entry_points=False).problems()
    assert line.startswith("plugin 'Bad' is disabled: register_mixers raised PluginError") and message in line


def test_an_import_string_that_does_not_import_fails_at_build_in_one_line() -> None:
    class Missing:
        @hookimpl
        def register_mixers(self, register):
            register("ghost", build="no_such_module_anywhere:Ghost")

    reg = build_registry((Missing(),), entry_points=False)
    assert reg.problems() == []  # nothing is imported at registration
    with pytest.raises(PluginError) as info:
        reg.get("mixer", "ghost").make(None, None)
    assert str(info.value) == (
        "mixer 'ghost' of plugin 'Missing': cannot import build='no_such_module_anywhere:Ghost': "
        "ModuleNotFoundError: No module named 'no_such_module_anywhere'"
    )
