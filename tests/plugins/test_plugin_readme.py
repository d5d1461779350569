"""plugins/README.md ("Writing a plugin") is followed literally: its files are written out, pip-installed,
tested with their own conformance tests and used through the CLI, and the messages it shows are real."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "plugins" / "README.md"


def readme_files() -> dict[str, str]:
    """Fenced blocks whose info string names a file: ```python deconstruct-ema/deconstruct_ema/_ema.py"""
    blocks = re.findall(r"^```\w+ (\S+)\n(.*?)^```", README.read_text(), flags=re.S | re.M)
    return dict(blocks)


@pytest.fixture(scope="module")
def ema_plugin(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(project folder, site dir): the README's plugin written out and installed with pip --target."""
    base = tmp_path_factory.mktemp("readme")
    for rel, text in readme_files().items():
        path = base / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    project, site = base / "deconstruct-ema", base / "site"
    out = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
         "--disable-pip-version-check", "--quiet", "--target", str(site), str(project)],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    return project, site


def test_readme_names_every_file_of_the_layout() -> None:
    assert set(readme_files()) == {
        "deconstruct-ema/pyproject.toml",
        "deconstruct-ema/deconstruct_ema/__init__.py",
        "deconstruct-ema/deconstruct_ema/_ema.py",
        "deconstruct-ema/tests/test_ema.py",
        "deconstruct-ema/ema.yaml",
    }


def test_readme_plugin_passes_its_conformance_tests(ema_plugin: tuple[Path, Path]) -> None:
    project, site = ema_plugin
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
                         capture_output=True, text=True, env=env, cwd=project, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "19 passed" in out.stdout  # the count the README promises


def test_readme_commands_and_messages(ema_plugin: tuple[Path, Path], on_path, cli) -> None:
    project, site = ema_plugin
    on_path(site)
    listed = cli("plugins", "list")
    assert listed.exit_code == 0 and re.search(r"ema\s+0\.1\.0\s+mixers\s+ok", listed.stdout), listed.stdout
    assert "ema" in cli("variants", "list", "--kind", "mixer").stdout
    spec = project / "ema.yaml"
    checked = cli("spec", "check", str(spec), "--set", "model.layout=hybrid")
    assert checked.exit_code == 0, checked.output
    assert "ema" in checked.stdout and "relaxed" in checked.stdout

    spec.write_text(spec.read_text().replace("decay:", "decy:"))
    bad = cli("spec", "check", str(spec))
    assert bad.exit_code == 2
    assert f"error: {spec}:7: model.mixer.decy: unknown key 'decy' (did you mean 'decay'?" in bad.stderr

    spec.write_text(spec.read_text().replace("kind: ema, decy: 0.95", "kind: emma"))
    bad = cli("spec", "check", str(spec))
    assert bad.exit_code == 2
    assert f"error: {spec}:7: model.mixer.kind: unknown mixer 'emma': did you mean 'ema'? registered: " in bad.stderr
