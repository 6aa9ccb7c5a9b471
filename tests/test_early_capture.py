"""Capture while the models load (realtime/sources/early.py): what a live source delivers before
the pipeline starts is kept, in order, within the stated limit, and handed over first."""

from __future__ import annotations

import threading
import time

import numpy as np

from realtime.queues import DropOldestQueue
from realtime.sources.base import Source, SourceStats
from realtime.sources.early import EarlyCapture, EarlyOptions
from realtime.types import SAMPLE_RATE_HZ, AudioBlock

BLOCK = 512  # 32 ms, as the microphone delivers


class PacedTone(Source):
    """A live audio source on its own thread: numbered 32 ms blocks at real time, into a
    drop-oldest queue of 8 blocks (a quarter of a second), like a device's own queue."""

    name = "tone"
    has_audio = True

    def __init__(self) -> None:
        self._q: DropOldestQueue = DropOldestQueue(8)
        self._stop = threading.Event()
        self.sent = 0

    def start(self) -> None:
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        t0 = time.monotonic()
        while not self._stop.is_set():
            samples = np.full(BLOCK, self.sent, np.float32)
            self._q.put(AudioBlock(self.sent, self.sent * BLOCK / SAMPLE_RATE_HZ, samples))
            self.sent += 1
            time.sleep(max(0.0, t0 + self.sent * BLOCK / SAMPLE_RATE_HZ - time.monotonic()))

    def read(self, timeout_s: float):
        return self._q.get(timeout_s)

    @property
    def finished(self) -> bool:
        return self._stop.is_set()

    def stop(self) -> None:
        self._stop.set()

    def stats(self) -> SourceStats:
        return SourceStats(audio_dropped=self._q.dropped)


def _drain(source: Source, until: int) -> list[AudioBlock]:
    got: list[AudioBlock] = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and (not got or got[-1].samples[-1] < until):
        block = source.read(0.1)
        if block is not None:
            got.append(block)
    return got


def test_audio_captured_while_loading_is_handed_over_whole_and_in_order() -> None:
    inner = PacedTone()
    early = EarlyCapture(inner)  # capture starts here, as when a session opens its devices
    time.sleep(1.5)  # "loading": six times the inner queue's capacity
    early.start()  # the pipeline starts: the backlog comes first
    loaded_at = inner.sent
    blocks = _drain(early, loaded_at + 5)
    early.stop()
    samples = np.concatenate([b.samples for b in blocks])
    values = samples[::BLOCK]
    assert values[0] == 0 and np.array_equal(values, np.arange(len(values))), "a block was lost"
    assert early.stats().audio_dropped == 0
    assert early.captured_audio_s >= 1.4
    assert max(b.duration_s for b in blocks) <= EarlyOptions().merge_s + 1e-9
    assert len(blocks) < loaded_at  # the backlog leaves in merged blocks (fits the live queue)
    times = [b.t_start_s for b in blocks]
    assert times == sorted(times) and times[0] == 0.0


def test_the_buffer_is_bounded_and_counts_what_it_drops() -> None:
    inner = PacedTone()
    early = EarlyCapture(inner, EarlyOptions(audio_limit_s=0.5))
    time.sleep(1.5)
    early.start()
    first = early.read(0.1)
    early.stop()
    assert first is not None and first.t_start_s > 0.5  # the oldest went first
    assert early.stats().audio_dropped >= 20  # ~1 s of 32 ms blocks, counted
