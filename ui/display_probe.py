"""Can Qt open a window here? Asked of a child process, before anything heavy loads.

Qt does not raise when its platform plugin cannot load or cannot reach the display: it prints a
few lines and aborts the process (SIGABRT, exit 134). A monitor that has loaded its models and
is capturing must not die that way, so main.py (and `python -m ui`) first start a
QApplication in a throw-away child with the same environment; if that fails, the caller falls
back (headless) with one line built here from what Qt printed: the shared libraries the
platform plugin could not load, or the display it could not connect to.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

PROBE_TIMEOUT_S = 60.0  # importing PyQt6 on a loaded machine takes seconds, not a minute
_PROBE = (
    "import sys\n"
    "from PyQt6.QtWidgets import QApplication\n"
    "app = QApplication(sys.argv[:1])\n"
    "print('qt-platform:' + app.platformName(), flush=True)\n"
)
_MISSING_LIB = re.compile(r"(lib[\w.+-]+\.so(?:\.\d+)*): cannot open shared object file")
_NO_DISPLAY = re.compile(r"could not connect to display ?(\S*)", re.IGNORECASE)
_XCB_CURSOR = re.compile(r"xcb-cursor0 or libxcb-cursor0 is needed")
SETUP_HINT = "run scripts/setup.sh (it installs the libraries Qt's xcb plugin needs)"


def probe_display(timeout_s: float = PROBE_TIMEOUT_S) -> tuple[str | None, str | None]:
    """(platform, None) when a QApplication starts in a child process with this environment,
    else (None, one line saying why: missing libraries, unreachable display, ...)."""
    env = dict(os.environ, QT_DEBUG_PLUGINS="1")  # makes Qt name the library that failed
    try:
        proc = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True,
                              text=True, timeout=timeout_s)  # fmt: skip
    except subprocess.TimeoutExpired:
        return None, f"Qt did not start a window within {timeout_s:.0f} s"
    except OSError as exc:
        return None, f"could not start the display probe ({exc})"
    found = re.search(r"qt-platform:(\S+)", proc.stdout)
    if proc.returncode == 0 and found:
        return found.group(1), None
    return None, explain_failure(proc.stderr, proc.returncode)


def explain_failure(stderr: str, returncode: int) -> str:
    """One line from a failed Qt start's output: what is missing, and what to do."""
    libs = set(_MISSING_LIB.findall(stderr))
    if libs or _XCB_CURSOR.search(stderr):  # Qt prints the latter on any xcb failure: ask ldd
        libs |= set(missing_libraries(xcb_plugin()))
    if libs:
        return (f"Qt's xcb platform plugin cannot load: {', '.join(sorted(libs))} not found; "
                f"{SETUP_HINT}")  # fmt: skip
    display = _NO_DISPLAY.search(stderr)
    if display:
        name = display.group(1) or os.environ.get("DISPLAY", "")
        return f"Qt could not connect to display {name or '(unset)'}; is an X server running there?"
    how = (f"killed by {signal.Signals(-returncode).name}" if returncode < 0
           else f"exit status {returncode}")  # fmt: skip
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip() and "qt.core" not in ln]
    detail = f": {lines[-1][:200]}" if lines else ""
    return f"Qt could not start a window ({how}){detail}"


def xcb_plugin() -> Path | None:
    """PyQt6's xcb platform plugin (libqxcb.so), if this is a Linux wheel that has one."""
    import importlib.util

    spec = importlib.util.find_spec("PyQt6")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "Qt6" / "plugins" / "platforms" / "libqxcb.so"
        if path.is_file():
            return path
    return None


def missing_libraries(library: Path | None) -> list[str]:
    """The shared libraries `ldd` reports "not found" for `library` (empty without ldd)."""
    if library is None:
        return []
    try:
        out = subprocess.run(["ldd", str(library)], capture_output=True, text=True,
                             timeout=30).stdout  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return []
    return sorted({ln.split("=>")[0].strip() for ln in out.splitlines() if "not found" in ln})
