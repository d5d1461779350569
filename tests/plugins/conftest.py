"""Fixtures for plugin tests: real installed distributions, without touching the shared environment.

- ``mixit_site``: the example plugin ``plugins/deconstruct-mixit`` installed by pip (``--target`` a
  temporary directory, once per session): a real wheel build and install, with its dist-info and entry point.
- ``make_dist``: writes a fake *installed distribution* — ``<name>-<version>.dist-info`` with ``METADATA``
  and ``entry_points.txt`` — plus plugin modules copied from ``fixtures/``, into a directory.
- ``on_path``: puts such directories on ``sys.path`` for the test (``importlib.metadata`` then finds the
  entry points exactly as for pip-installed plugins) and resets the plugin registry before and after.

Subprocess tests pass the same directories in ``PYTHONPATH`` (``cli.run(*args, paths=…)``, tests/conftest.py).
"""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from deconstruct.plugins import reset_registry

ROOT = Path(__file__).resolve().parents[2]
MIXIT_SRC = ROOT / "plugins" / "deconstruct-mixit"
FIXTURES = Path(__file__).parent / "fixtures"


def write_dist(root: Path, name: str, entry_points: dict[str, str], modules: tuple[str, ...] = (), version: str = "1.0") -> Path:
    """A fake installed distribution ``name`` in ``root``: dist-info with entry points of group
    ``deconstruct`` (plugin name -> module), and the given fixture modules copied next to it."""
    root.mkdir(parents=True, exist_ok=True)
    info = root / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = "".join(f"{ep} = {target}\n" for ep, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[deconstruct]\n{lines}")
    for mod in modules:
        shutil.copy(FIXTURES / f"{mod}.py", root / f"{mod}.py")
    return root


@pytest.fixture
def make_dist(tmp_path: Path) -> Callable[..., Path]:
    counter = iter(range(1000))

    def make(name: str, entry_points: dict[str, str], modules: tuple[str, ...] = (), version: str = "1.0") -> Path:
        return write_dist(tmp_path / f"site{next(counter)}", name, entry_points, modules, version)

    return make


@pytest.fixture
def on_path(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """``on_path(dir, ...)``: add site directories to sys.path for this test; the registry is rebuilt."""
    added: list[str] = []

    def add(*dirs: Path) -> None:
        for d in dirs:
            sys.path.insert(0, str(d))
            added.append(str(d))
        importlib.invalidate_caches()
        reset_registry()

    monkeypatch.delenv("DECONSTRUCT_LOAD_PLUGINS", raising=False)
    reset_registry()
    yield add
    for d in added:
        if d in sys.path:
            sys.path.remove(d)
        for name, mod in list(sys.modules.items()):  # forget plugin modules imported from there
            if (getattr(mod, "__file__", None) or "").startswith(d):
                del sys.modules[name]
    importlib.invalidate_caches()
    reset_registry()


@pytest.fixture(scope="session")
def mixit_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``pip install --no-deps --no-build-isolation --target SITE plugins/deconstruct-mixit`` (offline).

    The source is copied first so the build leaves nothing in the repository; ``--target`` keeps the
    shared Python environment untouched (other test runs on this machine must not see the plugin).
    """
    base = tmp_path_factory.mktemp("mixit")
    src, site = base / "src", base / "site"
    shutil.copytree(MIXIT_SRC, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", ".pytest_cache"))
    out = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
         "--disable-pip-version-check", "--quiet", "--target", str(site), str(src)],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, f"pip install of the example plugin failed:\n{out.stdout}\n{out.stderr}"
    assert list(site.glob("deconstruct_mixit-*.dist-info")), f"no dist-info in {site}"
    return site
