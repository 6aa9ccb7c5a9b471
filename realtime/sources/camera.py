"""Webcam source: one capture thread that only stamps frames and hands them to a drop-oldest queue.

Frames are stamped with the stream clock when `VideoCapture.read` returns, i.e. when the frame
became available to us (driver latency before that is not observable portably). Sequence numbers
count every captured frame, so a gap in `seq` downstream shows exactly where frames were dropped.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import cv2
import numpy as np

from realtime.clock import StreamClock
from realtime.queues import DropOldestQueue
from realtime.sources.base import Source, SourceError, SourceStats
from realtime.types import VideoFrame

log = logging.getLogger(__name__)


class CaptureLike(Protocol):
    """The part of cv2.VideoCapture the source uses (a test can inject its own)."""

    def isOpened(self) -> bool: ...  # noqa: N802 (OpenCV's name)
    def read(self) -> tuple[bool, np.ndarray | None]: ...
    def set(self, prop_id: int, value: float) -> bool: ...
    def release(self) -> None: ...


CaptureFactory = Callable[[int], CaptureLike]


@contextlib.contextmanager
def quiet_opencv() -> Iterator[None]:
    """Silence OpenCV's own WARN lines (probing a missing camera prints several) for a moment."""
    logging_api: Any = getattr(cv2, "utils", None)
    logging_api = getattr(logging_api, "logging", None)
    if logging_api is None:
        yield
        return
    previous = logging_api.getLogLevel()
    logging_api.setLogLevel(logging_api.LOG_LEVEL_ERROR)
    try:
        yield
    finally:
        logging_api.setLogLevel(previous)


@dataclass(frozen=True)
class CameraOptions:
    index: int = 0  # OpenCV device index (/dev/video<index> on Linux)
    width_px: int | None = 640  # requested size; the driver may pick the nearest it supports
    height_px: int | None = 480
    fps: float | None = None  # None: the driver's default rate
    queue_size: int = 4  # frames; small, so a lagging consumer always works on recent frames
    join_timeout_s: float = 2.0  # how long stop() waits for the capture thread
    max_failed_reads: int = 30  # consecutive failed reads (~1 s at 30 fps) mean the camera is gone
    reopen: bool = True  # try to open a lost camera again (it was unplugged and may come back)
    reopen_first_s: float = 0.5  # wait before the first attempt, doubled after each failure...
    reopen_max_s: float = 5.0  # ...up to this: a returning camera is back within seconds

    def __post_init__(self) -> None:
        if self.index < 0:
            raise ValueError(f"camera index must be >= 0, got {self.index}")
        if self.queue_size < 1 or self.max_failed_reads < 1 or self.join_timeout_s <= 0:
            raise ValueError("queue_size and max_failed_reads must be >= 1, join_timeout_s > 0")
        if not 0 < self.reopen_first_s <= self.reopen_max_s:
            raise ValueError("reopen delays must satisfy 0 < reopen_first_s <= reopen_max_s")


class CameraSource(Source):
    """Frames from a webcam on the session's stream clock. Verbs: start, read, stop."""

    name = "camera"
    has_video = True
    has_audio = False

    def __init__(
        self,
        options: CameraOptions | None = None,
        clock: StreamClock | None = None,
        capture_factory: CaptureFactory | None = None,
    ) -> None:
        self.options = options or CameraOptions()
        self.clock = clock or StreamClock()
        self._factory: CaptureFactory = capture_factory or cv2.VideoCapture
        self._queue: DropOldestQueue[VideoFrame] = DropOldestQueue(self.options.queue_size)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._delivered = 0
        self._reopens = 0
        self._capture_ended = threading.Event()  # set when the capture loop has exited
        self._probed: tuple[CaptureLike, np.ndarray] | None = None  # opened by probe, for start

    def _open(self) -> tuple[CaptureLike, np.ndarray]:
        o = self.options
        where = f"camera {o.index} could not be opened"
        hint = "try --list-devices or --video FILE"
        with quiet_opencv():
            capture = self._factory(o.index)
            if not capture.isOpened():
                capture.release()
                raise SourceError(f"{where}: no device answered at index {o.index}; {hint}")
            if o.width_px:
                capture.set(cv2.CAP_PROP_FRAME_WIDTH, o.width_px)
            if o.height_px:
                capture.set(cv2.CAP_PROP_FRAME_HEIGHT, o.height_px)
            if o.fps:
                capture.set(cv2.CAP_PROP_FPS, o.fps)
            ok, image = capture.read()
        if not ok or image is None:
            capture.release()
            raise SourceError(f"{where}: it opened but returned no frame (in use?); {hint}")
        return capture, image

    def probe(self) -> None:
        """Open the camera now and keep it for `start`: a missing or silent camera is a one-line
        SourceError before the models load (seconds), not after."""
        if self._probed is None and self._thread is None:
            self._probed = self._open()

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("CameraSource.start() called twice")
        if self._probed is not None:  # opened before the models loaded: its first frame is stale
            (capture, _), self._probed = self._probed, None
        else:
            capture, first = self._open()
            self._queue.put(VideoFrame(seq=0, t_s=self.clock.now(), image=first))
        self._thread = threading.Thread(
            target=self._capture_loop, args=(capture,), name=f"camera-{self.options.index}",
            daemon=True,
        )
        self._thread.start()

    def _capture_loop(self, capture: CaptureLike | None) -> None:
        seq, failures = 1, 0
        try:
            while not self._stop.is_set():
                if capture is None:
                    capture = self._reopen()
                    if capture is None:
                        break  # stopped while waiting
                    continue
                ok, image = capture.read()  # blocks until the driver has a frame
                t_s = self.clock.now()
                if not ok or image is None:
                    failures += 1
                    if failures >= self.options.max_failed_reads:
                        if not self.options.reopen:
                            log.error("camera %d stopped delivering frames; capture ended",
                                      self.options.index)
                            break
                        log.warning("camera %d stopped delivering frames; trying to reopen it",
                                    self.options.index)
                        failures = 0
                        capture.release()  # let go of the dead handle before opening a new one
                        capture = None
                    continue
                failures = 0
                self._queue.put(VideoFrame(seq=seq, t_s=t_s, image=image))
                seq += 1
        finally:
            # The device is released by the thread that reads it, never under a blocked read.
            if capture is not None:
                capture.release()
            self._capture_ended.set()

    def _reopen(self) -> CaptureLike | None:
        """Open the camera again, waiting longer after each failed attempt; None once stopped.
        The frame read to prove it works is dropped: frames resume with the next read."""
        delay_s = self.options.reopen_first_s
        attempts = 0
        while not self._stop.wait(delay_s):
            attempts += 1
            try:
                capture, _ = self._open()
            except SourceError as exc:
                log.debug("camera %d reopen attempt %d failed: %s", self.options.index,
                          attempts, exc)  # fmt: skip
                delay_s = min(2 * delay_s, self.options.reopen_max_s)
                continue
            self._reopens += 1
            log.warning("camera %d reopened after %d attempt(s)", self.options.index, attempts)
            return capture
        return None

    def read(self, timeout_s: float) -> VideoFrame | None:
        frame = self._queue.get(timeout_s)
        if frame is not None:
            self._delivered += 1
        return frame

    @property
    def finished(self) -> bool:
        """True once stopped (or the camera died) and every queued frame has been read."""
        ended = self._stop.is_set() or self._capture_ended.is_set()
        return ended and len(self._queue) == 0

    def stop(self) -> None:
        self._stop.set()
        if self._probed is not None:  # probed, never started (the session failed to load)
            self._probed[0].release()
            self._probed = None
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(self.options.join_timeout_s)
            if self._thread.is_alive():
                log.warning("camera %d capture thread did not stop within %.1f s",
                            self.options.index, self.options.join_timeout_s)

    def stats(self) -> SourceStats:
        return SourceStats(frames=self._delivered, frames_dropped=self._queue.dropped,
                           reopens=self._reopens)  # fmt: skip


def list_cameras(max_index: int = 4, capture_factory: CaptureFactory | None = None) -> list[str]:
    """One line per camera index in [0, max_index) that opens and delivers a frame."""
    factory: CaptureFactory = capture_factory or cv2.VideoCapture
    found: list[str] = []
    for index in range(max_index):
        with quiet_opencv():
            capture = factory(index)
            try:
                ok, image = capture.read() if capture.isOpened() else (False, None)
            finally:
                capture.release()
        if ok and image is not None:
            height, width = image.shape[:2]
            found.append(f"camera {index}: {width}x{height}")
    return found
