"""`python -m ui --connect tcp://127.0.0.1:5556 [--duration S --screenshot FILE.png]`."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ui.app import DashboardOptions, display_available, run_dashboard


def parse_options(argv: list[str] | None = None) -> DashboardOptions:
    parser = argparse.ArgumentParser(prog="python -m ui", description=__doc__)
    parser.add_argument("--connect", default=DashboardOptions.connect, metavar="ENDPOINT",
                        help="publisher endpoint (default %(default)s)")
    parser.add_argument("--duration", type=float, metavar="S", help="close after S seconds")
    parser.add_argument("--screenshot", type=Path, metavar="FILE.png",
                        help="save the window as PNG when --duration ends")
    parser.add_argument("--curve-server-key", type=Path, metavar="FILE",
                        help="the publisher's CurveZMQ public key file")
    parser.add_argument("--curve-client-key", type=Path, metavar="FILE",
                        help="our CurveZMQ secret key file (default: ephemeral keys)")
    parser.add_argument("--stall-after", type=float, default=DashboardOptions.stall_after_s,
                        metavar="S", help="call the stream stalled after S silent seconds")
    args = parser.parse_args(argv)
    try:
        return DashboardOptions(
            connect=args.connect, duration_s=args.duration, screenshot=args.screenshot,
            curve_server_key=args.curve_server_key, curve_client_key=args.curve_client_key,
            stall_after_s=args.stall_after)
    except ValueError as exc:
        parser.error(str(exc))
        raise  # unreachable: parser.error exits


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    options = parse_options(argv)
    if not display_available():
        logging.getLogger("ui").error(
            "no display (DISPLAY/WAYLAND_DISPLAY unset); set QT_QPA_PLATFORM=offscreen to run "
            "without one")
        return 2
    from ui.display_probe import probe_display

    _platform, problem = probe_display()  # Qt would abort this process instead of raising
    if problem is not None:
        logging.getLogger("ui").error("cannot open the dashboard: %s", problem)
        return 2
    return run_dashboard(options)


if __name__ == "__main__":
    sys.exit(main())
