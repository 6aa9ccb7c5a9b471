"""The dashboard on a real X display (Xvfb), as a new user runs it: Qt's xcb plugin finds every
library it links (checked with ldd), a real xcb window opens and its screenshot shows the
dashboard, main.py opens it, and where Qt cannot reach a display main.py runs headless with one
line instead of being aborted by Qt (SIGABRT)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq

from contract import messages as m
from ui.display_probe import explain_failure, xcb_plugin
from ui.synthetic import SyntheticOptions, synthetic_session

REPO = Path(__file__).resolve().parents[1]


def _x_env(display: str) -> dict[str, str]:
    """This environment with DISPLAY set and no forced Qt platform: Qt picks xcb as on a desktop."""
    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "WAYLAND_DISPLAY")}
    env["DISPLAY"] = display
    return env


def _free_endpoint() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


def _free_display() -> int:
    for n in range(90, 200):
        if not Path(f"/tmp/.X11-unix/X{n}").exists() and not Path(f"/tmp/.X{n}-lock").exists():
            return n
    raise RuntimeError("no free X display number in 90..199")


@pytest.fixture(scope="module")
def xvfb() -> Iterator[str]:
    if not sys.platform.startswith("linux"):
        pytest.skip("Xvfb is an X server for Linux")
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (scripts/setup.sh installs it: apt-get install xvfb)")
    n = _free_display()
    proc = subprocess.Popen(["Xvfb", f":{n}", "-screen", "0", "1400x1000x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.monotonic() + 20
    while not Path(f"/tmp/.X11-unix/X{n}").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"Xvfb :{n} did not start: {proc.stderr.read().decode()[-500:]}")
        time.sleep(0.1)
    yield f":{n}"
    proc.terminate()
    proc.wait(10)


def test_xcb_plugin_finds_every_library() -> None:
    plugin = xcb_plugin()
    if plugin is None or shutil.which("ldd") is None:
        pytest.skip("no PyQt6 xcb plugin or no ldd here (not a Linux wheel)")
    out = subprocess.run(["ldd", str(plugin)], capture_output=True, text=True, check=True).stdout
    missing = [ln.strip() for ln in out.splitlines() if "not found" in ln]
    assert not missing, f"run scripts/setup.sh; ldd {plugin.name}: {missing}"
    assert "libxcb-icccm.so.4" in out and "libxcb-keysyms.so.1" in out  # the two once missing


def test_a_real_x_window_and_its_screenshot(xvfb: str, qtbot, tmp_path: Path) -> None:
    """`python -m ui` on the Xvfb display (xcb, not offscreen), fed a minute of steps through a
    real PUB socket; the window grab is a picture of the dashboard, not one flat colour."""
    from PyQt6.QtGui import QImage

    out = tmp_path / "desktop.png"
    sock = zmq.Context.instance().socket(zmq.PUB)
    sock.setsockopt(zmq.LINGER, 0)
    endpoint = f"tcp://127.0.0.1:{sock.bind_to_random_port('tcp://127.0.0.1')}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "ui", "--connect", endpoint, "--duration", "6",
         "--screenshot", str(out)], cwd=REPO, env=_x_env(xvfb),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        msgs = [msg for _, msg in synthetic_session(SyntheticOptions(duration_s=60.0))]
        warm = [x for x in msgs if x.TOPIC == m.TOPIC_STATUS][:1]
        for _ in range(120):  # the probe and the window take a few seconds on a busy machine
            sock.send_multipart(m.encode(warm[0].TOPIC, warm[0]))
            qtbot.wait(25)
        for msg in msgs:
            sock.send_multipart(m.encode(msg.TOPIC, msg))
        output = proc.communicate(timeout=120)[0]
    finally:
        proc.kill()
        sock.close()
    assert proc.returncode == 0, output[-2000:]
    assert "Qt platform xcb" in output, output[-2000:]
    image = QImage(str(out))
    assert image.width() >= 800 and image.height() >= 600
    colours = {image.pixel(x, y) for x in range(0, image.width(), 7)
               for y in range(0, image.height(), 7)}  # fmt: skip
    assert len(colours) > 20, f"{len(colours)} colours: a blank or single-colour window"


def test_qt_failure_output_becomes_one_line() -> None:
    """What Qt prints when libraries are missing (the case of a machine without them, as Qt 6 prints it) becomes
    one line naming them; `could not connect` names the display."""
    qt_output = (
        "qt.core.library: \"/x/PyQt6/Qt6/plugins/platforms/libqxcb.so\" cannot load: Cannot load "
        "library /x/libqxcb.so: (libxcb-icccm.so.4: cannot open shared object file: No such file "
        "or directory)\nqt.qpa.plugin: From 6.5.0, xcb-cursor0 or libxcb-cursor0 is needed to "
        "load the Qt xcb platform plugin.\nqt.qpa.plugin: Could not load the Qt platform plugin "
        "\"xcb\" in \"\" even though it was found.\n"
    )
    line = explain_failure(qt_output, -6)
    assert "libxcb-icccm.so.4 not found" in line and "scripts/setup.sh" in line
    assert "\n" not in line
    line = explain_failure("qt.qpa.xcb: could not connect to display :77\n", -6)
    assert "display :77" in line and "\n" not in line


def test_main_without_a_reachable_display_runs_headless(tmp_path: Path) -> None:
    display = f":{_free_display()}"  # nothing listens there
    proc = subprocess.run(
        [sys.executable, str(REPO / "main.py"), "--demo", "--duration", "1",
         "--publish", _free_endpoint()],
        cwd=REPO, env=_x_env(display), capture_output=True, text=True, timeout=400,
    )  # fmt: skip
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    lines = [ln for ln in output.splitlines() if "running headless" in ln]
    assert len(lines) == 1 and f"could not connect to display {display}" in lines[0], output[-3000:]
    assert "t=" in proc.stdout  # the headless status lines


@pytest.mark.slow  # loads the models: ~30-60 s on a busy 2-core machine
def test_main_opens_the_dashboard_on_x(xvfb: str) -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "main.py"), "--demo", "--duration", "2",
         "--publish", _free_endpoint()],
        cwd=REPO, env=_x_env(xvfb), capture_output=True, text=True, timeout=400,
    )  # fmt: skip
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    assert "dashboard window on Qt platform xcb" in output, output[-3000:]
    assert "headless" not in output
