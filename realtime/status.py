"""Counters and rolling figures of a running session, turned into msrg.status messages."""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass, field

import numpy as np


@dataclass
class SessionStats:
    """Shared by the pipeline's threads; every update holds the lock briefly."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    frames_processed: int = 0
    steps_published: int = 0
    utterances_published: int = 0
    errors: int = 0
    last_error: str | None = None
    latencies_ms: collections.deque = field(default_factory=lambda: collections.deque(maxlen=200))
    _rate_marks: dict = field(default_factory=dict)

    def error(self, message: str) -> None:
        with self.lock:
            self.errors += 1
            self.last_error = message[:300]

    def frame_done(self) -> None:
        with self.lock:
            self.frames_processed += 1

    def latency_percentiles(self) -> tuple[float | None, float | None]:
        with self.lock:
            values = list(self.latencies_ms)
        if not values:
            return None, None
        return float(np.percentile(values, 50)), float(np.percentile(values, 95))

    def rate(self, name: str, count: int) -> float:
        """Events per second of a counter since the previous call with the same name."""
        now = time.monotonic()
        prev = self._rate_marks.get(name)
        self._rate_marks[name] = (now, count)
        if prev is None or now - prev[0] <= 0:
            return 0.0
        return max(0.0, (count - prev[1]) / (now - prev[0]))
