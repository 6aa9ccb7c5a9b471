"""Start the dashboard: options, display detection, and the Qt event loop (`run_dashboard`)."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ui.frame_slot import FrameSlot

if TYPE_CHECKING:  # Qt and zmq load only when the window opens
    from ui.dashboard import DashboardWindow
    from ui.subscriber import Subscriber

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DashboardOptions:
    connect: str = "tcp://127.0.0.1:5556"  # the publisher's endpoint
    duration_s: float | None = None  # close after this long (with `screenshot`: grab, then close)
    screenshot: Path | None = None  # PNG of the window written just before closing
    curve_server_key: Path | None = None  # publisher's public key file, when it uses CurveZMQ
    curve_client_key: Path | None = None  # our secret key file (authorised by the publisher)
    stall_after_s: float = 3.0  # no message for this long while connected => "stalled"
    title: str = "affect monitor"

    def __post_init__(self) -> None:
        if self.duration_s is not None and self.duration_s <= 0:
            raise ValueError(f"--duration must be positive, got {self.duration_s}")
        if self.screenshot is not None and self.duration_s is None:
            raise ValueError("--screenshot needs --duration (when to take it)")
        if self.screenshot is not None and self.screenshot.suffix.lower() != ".png":
            raise ValueError(f"--screenshot must name a .png file, got {self.screenshot}")


def display_available() -> bool:
    """Whether a window can open: on Linux a display server, or a Qt platform chosen explicitly.

    main.py falls back to headless when this is False, rather than letting Qt abort the process.
    """
    if os.environ.get("QT_QPA_PLATFORM"):
        return True  # the user picked a platform (offscreen included): trust it
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True  # macOS and Windows always have a window system


def run_dashboard(
    options: DashboardOptions, preview: FrameSlot | None = None,
    should_quit: Callable[[], bool] | None = None,
) -> int:  # fmt: skip
    """Open the window and run the Qt event loop until it closes; returns the exit status.

    Call from the main thread. `preview` is given only when capture runs in this process;
    `should_quit` is polled (5 Hz) so an in-process session can close the window when it ends
    or on Ctrl-C (Python signal handlers only run when the interpreter gets control).
    """
    # Qt and zmq are imported here so that `import ui.app` stays cheap for a headless main.py.
    import zmq
    from PyQt6.QtCore import QTimer
    from PyQt6.QtWidgets import QApplication

    from ui.dashboard import DashboardWindow
    from ui.history import History
    from ui.subscriber import Subscriber, SubscriberOptions

    try:
        sub_options = SubscriberOptions(
            endpoint=options.connect, stall_after_s=options.stall_after_s,
            curve_server_key=options.curve_server_key, curve_client_key=options.curve_client_key)
    except ValueError as exc:
        log.error("%s", exc)
        return 2
    app = QApplication.instance() or QApplication(sys.argv[:1])
    log.info("dashboard window on Qt platform %s", app.platformName())
    window = DashboardWindow(History(), title=f"{options.title} — {options.connect}",
                             preview=preview)
    try:
        subscriber = Subscriber(sub_options, parent=window)
    except (zmq.ZMQError, OSError, ValueError) as exc:  # a bad endpoint; unreadable key files
        log.error("cannot subscribe to %s: %s", options.connect, exc)
        window.close()
        return 2
    connect_window(window, subscriber)
    window.show()
    status = {"code": 0}
    if options.duration_s is not None:
        def finish() -> None:
            if options.screenshot is not None:
                window.refresh()
                if not save_screenshot(window, options.screenshot):
                    status["code"] = 1
            window.close()
        QTimer.singleShot(int(options.duration_s * 1000), finish)
    if should_quit is not None:
        poll = QTimer(window)
        poll.timeout.connect(lambda: window.close() if should_quit() else None)
        poll.start(200)
    # PyQt aborts the process on an exception escaping a slot unless sys.excepthook is replaced;
    # the monitor must stay up, so log it instead (for the event loop's lifetime only).
    previous_hook, sys.excepthook = sys.excepthook, _log_unhandled
    try:
        app.exec()
    finally:
        sys.excepthook = previous_hook
        subscriber.close()
    return status["code"]


def _log_unhandled(kind: type[BaseException], exc: BaseException, tb: object) -> None:
    log.error("unhandled exception in the GUI", exc_info=(kind, exc, tb))  # type: ignore[arg-type]


def connect_window(window: DashboardWindow, subscriber: Subscriber) -> None:
    """Wire a subscriber's signals to a dashboard window (also used by tests and benchmarks)."""
    subscriber.messages.connect(window.on_messages)
    subscriber.connection_changed.connect(window.set_connection)
    subscriber.rejected.connect(window.set_rejected)
    window.set_connection(subscriber.state.value, subscriber.reconnects)


def save_screenshot(window: DashboardWindow, path: Path) -> bool:
    """Grab the window (widgets and plots) into a PNG; False, with a log line, when it fails."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ok = window.grab().save(str(path), "PNG")
    if ok:
        log.info("screenshot saved to %s", path)
    else:
        log.error("could not save a screenshot to %s", path)
    return bool(ok)
