"""The one stream clock: monotonic seconds since the session started.

Every frame, audio block, step and message carries stream time from this clock. Wall-clock (unix)
time is added only when a message is emitted.
"""

from __future__ import annotations

import time


class StreamClock:
    """Monotonic seconds since construction (or since an explicit origin)."""

    def __init__(self, origin_monotonic_s: float | None = None) -> None:
        self._origin_s = time.monotonic() if origin_monotonic_s is None else origin_monotonic_s

    def restart(self) -> None:
        """Make now stream time 0 (a session starts its clock when capture starts)."""
        self._origin_s = time.monotonic()

    @property
    def origin_monotonic_s(self) -> float:
        return self._origin_s

    def now(self) -> float:
        """Seconds since the session start."""
        return time.monotonic() - self._origin_s

    def to_stream(self, monotonic_s: float) -> float:
        """Convert a `time.monotonic()` reading to stream seconds."""
        return monotonic_s - self._origin_s
