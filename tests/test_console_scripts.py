"""The console scripts in pyproject.toml: each names a callable in a module that the package list
installs, and `python main.py` in a checkout runs the same command as `affect-monitor`."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
SCRIPTS = PYPROJECT["project"].get("scripts", {})


def _installed_packages() -> set[str]:
    from setuptools import find_packages

    include = PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    return set(find_packages(str(ROOT), include=include))


def test_the_two_commands_are_declared() -> None:
    assert set(SCRIPTS) >= {"affect-monitor", "affect-monitor-dashboard"}
    assert SCRIPTS["affect-monitor"] == "affect_monitor.cli:run"
    assert SCRIPTS["affect-monitor-dashboard"] == "ui.__main__:main"


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_each_entry_resolves_to_a_callable_in_an_installed_package(script: str) -> None:
    module_name, _, attr = SCRIPTS[script].partition(":")
    assert attr, f"{script}: entry {SCRIPTS[script]!r} names no function"
    package = module_name.rpartition(".")[0] or module_name
    assert package in _installed_packages(), (
        f"{script}: {package} is not in [tool.setuptools.packages.find] include, so an installed "
        "copy could not import it")  # fmt: skip
    module = importlib.import_module(module_name)
    assert callable(getattr(module, attr))


def test_main_py_is_the_same_command() -> None:
    import main
    from affect_monitor import cli

    assert main.main is cli.main and main.run is cli.run
    assert main.build_parser is cli.build_parser and main.options_from is cli.options_from


@pytest.mark.parametrize("command", [["main.py"], ["-m", "affect_monitor.cli"]])
def test_help_runs_from_a_checkout(command: list[str]) -> None:
    out = subprocess.run([sys.executable, *command, "--help"], capture_output=True, text=True,
                         cwd=ROOT, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert "--demo" in out.stdout and "--camera" in out.stdout
