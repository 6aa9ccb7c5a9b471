"""What `python main.py` and `python -m realtime.multi` share on the command line: the output,
model and timing flags, and what SIGINT and SIGTERM do.

Each command adds its own inputs (one camera, microphone or file; several files) and help text
where the meaning differs (stream i's port or folder).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
from pathlib import Path

from realtime.publisher import DEFAULT_ENDPOINT
from realtime.session import DEFAULT_CHECKPOINT

log = logging.getLogger("affect-monitor")

ENGINE_CHOICES = ("auto", "onnx", "tensorrt", "eager", "triton")


def add_output_flags(group, publish_help: str, record_help: str) -> None:  # noqa: ANN001
    """--publish, --curve-keys, --insecure, --record."""
    group.add_argument("--publish", default=DEFAULT_ENDPOINT, metavar="ENDPOINT", help=publish_help)
    group.add_argument("--curve-keys", type=Path, metavar="DIR",
                       help="CurveZMQ keys (python -m realtime.keys DIR); required beyond loopback")  # fmt: skip
    group.add_argument("--insecure", action="store_true",
                       help="allow publishing beyond loopback without encryption")  # fmt: skip
    group.add_argument("--record", type=Path, metavar="DIR", help=record_help)


def add_model_flags(group, engines: tuple[str, ...], default_engine: str) -> None:  # noqa: ANN001
    """--engine (among `engines`), --checkpoint."""
    group.add_argument("--engine", default=default_engine, choices=list(engines))
    group.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT, metavar="PATH")


def add_timing_flags(group) -> None:  # noqa: ANN001
    """--duration, --pause-ms, --no-text-hold, --step-hz."""
    group.add_argument("--duration", type=float, metavar="SECONDS",
                       help="stop after this much stream time")  # fmt: skip
    group.add_argument("--pause-ms", type=float, default=600.0,
                       help="silence that closes an utterance (default 600)")  # fmt: skip
    group.add_argument("--no-text-hold", action="store_true",
                       help="words count only while spoken, not through gaps shorter than "
                            "--pause-ms (as the shipped checkpoint was trained)")  # fmt: skip
    group.add_argument("--step-hz", type=float, default=10.0,
                       help="model time steps per second (default 10)")  # fmt: skip


def add_log_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )


class StopOnSignal:
    """SIGINT and SIGTERM end a run in order: the first sets `stop` (and, while the models are
    still loading, interrupts the load with KeyboardInterrupt); a second exits at once, since
    every record is already on disk. Install before the models load, so that a signal then is as
    orderly as later."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.loading = True  # set False once the session exists

    def __call__(self, signum: int, _frame: object) -> None:
        name = signal.Signals(signum).name
        if self.stop.is_set():
            log.warning("%s again: exiting at once", name)
            os._exit(128 + signum)
        log.info("%s: stopping", name)
        self.stop.set()
        if self.loading:
            raise KeyboardInterrupt

    def install(self) -> StopOnSignal:
        signal.signal(signal.SIGINT, self)
        signal.signal(signal.SIGTERM, self)
        return self
