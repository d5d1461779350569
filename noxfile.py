"""Developer sessions. `nox` runs tests, lint and typecheck; `nox -s slow` and `nox -s gpu` are opt-in.

Sessions reuse the torch you installed (virtualenvs see system site-packages), so nox never pulls a
multi-GB CUDA build on a CPU machine: install the torch build for your machine first.
"""

from __future__ import annotations

import nox

PYPROJECT = nox.project.load_toml("pyproject.toml")
PYTHONS = nox.project.python_versions(PYPROJECT, max_version="3.13")

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True


def _install(session: nox.Session) -> None:
    session.install("-e", ".[dev]")


@nox.session(python=PYTHONS, venv_params=["--system-site-packages"])
def tests(session: nox.Session) -> None:
    """The test suite without slow and GPU tests (what CI runs)."""
    _install(session)
    session.run("pytest", *session.posargs)


@nox.session(venv_params=["--system-site-packages"])
def slow(session: nox.Session) -> None:
    """Longer end-to-end tests."""
    _install(session)
    session.run("pytest", "-m", "slow", *session.posargs)


@nox.session(venv_params=["--system-site-packages"])
def gpu(session: nox.Session) -> None:
    """CUDA tests: the Triton kernels compiled for the GPU (no interpreter)."""
    _install(session)
    session.run("pytest", "-m", "gpu", "tests/kernels", *session.posargs, env={"TRITON_INTERPRET": "0"})


@nox.session(venv_params=["--system-site-packages"])
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", "deconstruct", "plugins", "kernels", "tests", "benchmarks", "noxfile.py")


@nox.session(venv_params=["--system-site-packages"])
def typecheck(session: nox.Session) -> None:
    """mypy on the package and on what ships inside it from plugins/builtin and kernels/."""
    _install(session)
    session.run("mypy", "deconstruct", "plugins/builtin", "kernels")
