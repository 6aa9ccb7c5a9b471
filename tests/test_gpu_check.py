"""`make gpu-check` on a machine without an NVIDIA GPU: one clear line, exit status 2, nothing
installed (on a machine with a GPU this test is skipped: there the script really installs)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="an NVIDIA driver is present")
def test_without_a_gpu_it_stops_with_one_line(tmp_path: Path) -> None:
    venv = tmp_path / "venv-gpu"
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "gpu_check.sh")], capture_output=True, text=True,
        env={"PATH": "/usr/bin:/bin", "GPU_VENV": str(venv)}, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpu-check: no NVIDIA GPU found"), lines
    assert not venv.exists()  # it stopped before creating the environment
