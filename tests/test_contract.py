"""contract/: the shared names, their one pinned copy, and the import layers (import-linter)."""

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

from contract import names

ROOT = Path(__file__).resolve().parents[1]


def _tuple_in(path: Path, name: str) -> tuple:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Assign) and any(
            getattr(t, "id", None) == name for t in node.targets
        ):
            return ast.literal_eval(node.value)
    raise AssertionError(f"{name} not found in {path}")


def test_the_triton_model_file_keeps_the_state_names_in_contract_order():
    # That file runs inside Triton's Python backend and cannot import the project.
    assert _tuple_in(ROOT / "engines" / "triton_cpu_model.py", "STATE_NAMES") == names.STATE_NAMES


def test_every_layer_uses_the_one_definition():
    from contract import messages
    from engines import graphs
    from msrg import config, model

    assert graphs.STATE_NAMES is model.STATE_NAMES is names.STATE_NAMES
    assert config.MODALITIES is model.MODALITIES is names.MODALITIES
    assert messages.INTENSITY_MAX == model.INTENSITY_RANGE == names.INTENSITY_MAX
    assert config.MSRGConfig().visual_dim == names.LIVE_VISUAL_DIM == 12


def test_contract_imports_nothing_heavy_and_nothing_of_the_project():
    code = ("import sys, contract.messages, contract.names; "
            "print(sorted(m for m in ('torch', 'numpy', 'realtime', 'msrg', 'engines', 'ui', 'lab') "
            "if m in sys.modules))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def _lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("lint-imports")
    return subprocess.run([str(exe), "--no-cache"], capture_output=True, text=True, cwd=cwd,
                          env={"PYTHONPATH": str(cwd), "PATH": "/usr/bin:/bin"})  # fmt: skip


def test_the_import_layers_hold():
    out = _lint_imports(ROOT)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "3 kept, 0 broken" in out.stdout


def test_the_layer_check_catches_an_import_running_up(tmp_path):
    """The same tool on a two-package tree where the lower layer imports the upper one."""
    for pkg in ("low", "high"):
        (tmp_path / pkg).mkdir()
        (tmp_path / pkg / "__init__.py").write_text("")
    (tmp_path / "low" / "uses_high.py").write_text("import high\n")
    (tmp_path / "pyproject.toml").write_text(
        textwrap.dedent("""
        [tool.importlinter]
        root_packages = ["low", "high"]
        [[tool.importlinter.contracts]]
        name = "high > low"
        type = "layers"
        layers = ["high", "low"]
    """)
    )
    out = _lint_imports(tmp_path)
    assert out.returncode != 0
    assert "BROKEN" in out.stdout and "low.uses_high -> high" in out.stdout
