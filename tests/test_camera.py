"""Camera source: the missing-device error on this camera-less machine, and the capture thread's
drop-oldest hand-off, driven by a fake VideoCapture (the only fake: no real camera exists here)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from realtime.clock import StreamClock
from realtime.sources.base import SourceError
from realtime.sources.camera import CameraOptions, CameraSource, list_cameras


class FakeCapture:
    """Delivers numbered (4, 4, 3) frames every `period_s`; fails reads after `n_frames`."""

    def __init__(self, period_s: float = 0.001, n_frames: int | None = None,
                 opened: bool = True, first_read_ok: bool = True) -> None:
        self.period_s, self.n_frames = period_s, n_frames
        self.opened, self.first_read_ok = opened, first_read_ok
        self.reads = 0
        self.released = threading.Event()

    def isOpened(self) -> bool:  # noqa: N802 (OpenCV's name)
        return self.opened

    def set(self, prop_id: int, value: float) -> bool:
        return True

    def read(self) -> tuple[bool, np.ndarray | None]:
        time.sleep(self.period_s)
        self.reads += 1
        if (self.reads == 1 and not self.first_read_ok) or (
            self.n_frames is not None and self.reads > self.n_frames
        ):
            return False, None
        return True, np.full((4, 4, 3), self.reads % 256, np.uint8)

    def release(self) -> None:
        self.released.set()


def test_missing_camera_is_one_line_error_and_fast() -> None:
    start = time.perf_counter()
    with pytest.raises(SourceError) as info:
        CameraSource(CameraOptions(index=7)).start()
    assert time.perf_counter() - start < 2.0
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("camera 7 could not be opened")
    assert "--list-devices" in message and "--video FILE" in message


def test_camera_that_opens_but_gives_no_frame() -> None:
    fake = FakeCapture(first_read_ok=False)
    with pytest.raises(SourceError, match="camera 0 could not be opened: .*no frame"):
        CameraSource(capture_factory=lambda index: fake).start()
    assert fake.released.is_set()


def test_slow_consumer_drops_oldest_frames_and_counts_them() -> None:
    fake = FakeCapture(period_s=0.001)
    source = CameraSource(CameraOptions(queue_size=3), StreamClock(),
                          capture_factory=lambda index: fake)
    source.start()
    frames = []
    for _ in range(5):
        time.sleep(0.03)  # a consumer far slower than the 1 kHz "camera"
        frames.append(source.read(timeout_s=1.0))
    source.stop()
    assert fake.released.wait(2.0)
    stats = source.stats()
    assert stats.frames == 5 and stats.frames_dropped > 0
    seqs = [f.seq for f in frames]
    times = [f.t_s for f in frames]
    assert seqs == sorted(seqs) and len(set(seqs)) == 5
    assert seqs[-1] - seqs[0] > 4  # gaps where frames were dropped
    assert times == sorted(times)
    # After stop every captured frame was delivered, dropped, or is still queued.
    leftover = []
    while (frame := source.read(timeout_s=0.0)) is not None:
        leftover.append(frame)
    newest_seq = leftover[-1].seq if leftover else seqs[-1]
    delivered = stats.frames + len(leftover)
    assert delivered + source.stats().frames_dropped == newest_seq + 1


def test_stop_joins_promptly_and_finishes() -> None:
    source = CameraSource(capture_factory=lambda index: FakeCapture(period_s=0.01))
    source.start()
    assert source.read(timeout_s=1.0) is not None
    start = time.perf_counter()
    source.stop()
    assert time.perf_counter() - start < 0.5
    while source.read(timeout_s=0.0) is not None:
        pass
    assert source.finished
    source.stop()  # idempotent


def test_camera_that_dies_ends_the_capture() -> None:
    fake = FakeCapture(period_s=0.0, n_frames=5)
    source = CameraSource(CameraOptions(max_failed_reads=3, queue_size=10, reopen=False),
                          capture_factory=lambda index: fake)
    source.start()
    assert fake.released.wait(2.0)
    frames = [source.read(timeout_s=0.0) for _ in range(5)]
    assert [f.seq for f in frames] == [0, 1, 2, 3, 4]
    assert source.finished


def test_unplugged_camera_is_reopened_with_backoff() -> None:
    # Plugged in, unplugged (reads fail), absent for one attempt, then back.
    captures = iter([FakeCapture(period_s=0.005, n_frames=5), FakeCapture(opened=False),
                     FakeCapture(period_s=0.005)])
    opened_at: list[float] = []

    def factory(index: int) -> FakeCapture:
        opened_at.append(time.monotonic())
        return next(captures)

    source = CameraSource(
        CameraOptions(max_failed_reads=3, queue_size=100, reopen_first_s=0.05, reopen_max_s=0.2),
        capture_factory=factory,
    )
    source.start()
    try:
        seqs = []
        deadline = time.monotonic() + 5.0
        while len(seqs) < 12 and time.monotonic() < deadline:
            frame = source.read(timeout_s=0.1)
            if frame is not None:
                seqs.append(frame.seq)
        assert len(seqs) == 12, seqs  # frames flow again after the reopen
        assert seqs == sorted(seqs) and not source.finished
        assert source.stats().reopens == 1 and len(opened_at) == 3
        assert opened_at[2] - opened_at[1] >= 0.09  # the wait doubled after the failed attempt
    finally:
        source.stop()
    while source.read(timeout_s=0.0) is not None:
        pass
    assert source.finished


def test_stop_interrupts_a_reopen_wait() -> None:
    source = CameraSource(CameraOptions(max_failed_reads=1, reopen_first_s=5.0, reopen_max_s=5.0),
                          capture_factory=lambda index: FakeCapture(period_s=0.0, n_frames=1))
    source.start()
    time.sleep(0.1)  # the capture has failed and waits to reopen
    start = time.monotonic()
    source.stop()
    assert time.monotonic() - start < 1.0
    while source.read(timeout_s=0.0) is not None:
        pass
    assert source.finished


def test_list_cameras() -> None:
    assert isinstance(list_cameras(max_index=2), list)  # none on CI machines; must not raise
    lines = list_cameras(max_index=2, capture_factory=lambda index: FakeCapture(period_s=0.0))
    assert lines == ["camera 0: 4x4", "camera 1: 4x4"]


def test_describe_devices_lists_cameras_and_microphones() -> None:
    from realtime.sources.devices import describe_devices

    text = describe_devices(max_camera_index=2)
    assert text.startswith("cameras")
    assert "\nmicrophones:\n" in text


def test_probe_opens_once_keeps_the_device_for_start_and_stop_releases_an_unstarted_one() -> None:
    opened: list[FakeCapture] = []

    def factory(index: int) -> FakeCapture:
        opened.append(FakeCapture())
        return opened[-1]

    source = CameraSource(capture_factory=factory)
    source.probe()  # what the session does before the models load
    source.probe()  # idempotent
    source.start()
    try:
        deadline = time.monotonic() + 2
        while source.read(0.1) is None and time.monotonic() < deadline:
            pass
        assert len(opened) == 1  # start used the probed device rather than opening another
        assert opened[0].reads >= 2  # the probe's frame was stale and dropped; capture read on
    finally:
        source.stop()
    unstarted = CameraSource(capture_factory=factory)
    unstarted.probe()
    unstarted.stop()  # e.g. the model failed to load after the probe
    assert opened[-1].released.is_set()


def test_a_session_refuses_a_missing_camera_before_loading_models(monkeypatch) -> None:
    from realtime import session as session_module
    from realtime.session import InputOptions, Session, SessionError, SessionOptions

    def must_not_load(*args, **kwargs):
        raise AssertionError("the models were loaded before the camera was checked")

    monkeypatch.setattr(session_module, "load_live_engine", must_not_load)
    with pytest.raises(SessionError, match="camera 7 could not be opened"):
        Session(SessionOptions(inputs=InputOptions(camera=7)))
