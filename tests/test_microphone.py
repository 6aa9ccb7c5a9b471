"""Microphone source: the one-line error without a device, stamping, overflow, resampling, and a
device that opens but delivers nothing.

Missing devices are an index and a name that no machine has, so the one-line SourceError is
checked whatever devices this machine lists (the system default only where none is listed). The
callback and read paths are driven with synthetic blocks, exactly as PortAudio would call them.
"""

from __future__ import annotations

import logging
import time
from types import SimpleNamespace

import numpy as np
import pytest

from contract import messages
from realtime.clock import StreamClock
from realtime.device_health import DeliveryWatch
from realtime.sources.base import SourceError
from realtime.sources.microphone import MicrophoneOptions, MicrophoneSource, list_microphones
from realtime.types import SAMPLE_RATE_HZ

OK = SimpleNamespace(input_overflow=False)
OVERFLOW = SimpleNamespace(input_overflow=True)


NO_SUCH_INDEX = 99  # PortAudio numbers devices from 0; no machine here has a hundred
NO_SUCH_NAME = "no-such-microphone-xyz"


def has_input_device() -> bool:
    return bool(list_microphones())


def _check_missing(device, verb: str) -> None:
    source = MicrophoneSource(StreamClock(), MicrophoneOptions(device=device))
    with pytest.raises(SourceError) as info:
        getattr(source, verb)()
    message = str(info.value)
    assert "\n" not in message and "--list-devices" in message
    assert ("default input device" if device is None else repr(device)) in message
    source.stop()  # idempotent after a failed start
    source.stop()
    assert source.finished


@pytest.mark.parametrize("verb", ["probe", "start"])
@pytest.mark.parametrize("device", [NO_SUCH_INDEX, NO_SUCH_NAME])
def test_missing_microphone_is_one_line(device, verb) -> None:
    _check_missing(device, verb)


@pytest.mark.skipif(has_input_device(), reason="an input device is listed: the default exists")
def test_no_default_microphone_is_one_line() -> None:
    _check_missing(None, "start")


def test_list_microphones_returns_strings() -> None:
    names = list_microphones()
    assert isinstance(names, list) and all(isinstance(n, str) for n in names)


def test_blocks_are_contiguous_and_overflow_reanchors() -> None:
    clock = StreamClock()
    source = MicrophoneSource(clock, MicrophoneOptions(queue_blocks=4))
    source._begin(SAMPLE_RATE_HZ)
    block = np.full((512, 1), 0.25, dtype=np.float32)
    for _ in range(3):
        source._on_audio(block, 512, None, OK)
    source._on_audio(block, 512, None, OVERFLOW)
    got = [source.read(0.1) for _ in range(4)]
    assert [b.seq for b in got] == [0, 1, 2, 3]
    assert got[1].t_start_s - got[0].t_start_s == pytest.approx(512 / SAMPLE_RATE_HZ)
    assert got[2].t_start_s == pytest.approx(got[1].t_end_s)
    assert got[0].t_start_s <= clock.now()
    assert np.all(got[0].samples == 0.25) and got[0].samples.dtype == np.float32
    stats = source.stats()
    assert stats.audio_overflows == 1 and stats.audio_blocks == 4 and stats.audio_dropped == 0
    assert source.read(0.01) is None


def test_consumer_falling_behind_drops_oldest() -> None:
    source = MicrophoneSource(StreamClock(), MicrophoneOptions(queue_blocks=2))
    source._begin(SAMPLE_RATE_HZ)
    for value in (0.1, 0.2, 0.3):
        source._on_audio(np.full((512, 1), value, np.float32), 512, None, OK)
    assert source.stats().audio_dropped == 1
    assert source.read(0.1).samples[0] == pytest.approx(0.2)


def test_device_at_48k_is_resampled_to_16k() -> None:
    source = MicrophoneSource(StreamClock(), MicrophoneOptions())
    source._begin(48_000)
    t = np.arange(48_000) / 48_000
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    for pos in range(0, 48_000, 1536):
        source._on_audio(tone[pos : pos + 1536, None], 1536, None, OK)
    blocks = []
    while (b := source.read(0.01)) is not None:
        blocks.append(b)
    out = np.concatenate([b.samples for b in blocks])
    assert abs(len(out) - SAMPLE_RATE_HZ) <= 64  # filter delay keeps a few samples back
    spectrum = np.abs(np.fft.rfft(out[: SAMPLE_RATE_HZ // 2]))
    assert abs(int(np.argmax(spectrum)) * 2 - 440) <= 2  # 2 Hz bins over half a second
    assert blocks[1].t_start_s == pytest.approx(blocks[0].t_end_s)


def test_first_silence_is_start_up_then_loss_with_real_time_stamps() -> None:
    """The health rule on real monotonic time stamps: nothing yet is start-up until the grace has
    passed, then a loss named as such; after a first block only `lost_after_s` of quiet counts."""
    grace = MicrophoneSource.startup_grace_s
    assert grace > 1.0  # PortAudio's first block can take over a second
    watch = DeliveryWatch(lost_after_s=1.0, startup_grace_s={"audio": grace})
    opened = watch.opened_at
    assert abs(opened - time.monotonic()) < 1.0  # stamped at creation
    assert not watch.silent("audio", opened + 1.5)  # past lost_after_s: still start-up
    assert watch.silent("audio", opened + grace + 0.01)
    assert "since it opened" in watch.loss_message("microphone", "audio", "audio")
    assert watch.silent("video", opened + 1.01)  # a device without a grace: 1 s
    watch.delivered("audio")  # a real block now
    assert not watch.silent("audio")
    assert not watch.silent("audio", time.monotonic() + 0.9)
    assert watch.silent("audio", time.monotonic() + 1.1)
    assert "nothing for 1.0 s" in watch.loss_message("microphone", "audio", "audio")


class SilentMicrophone(MicrophoneSource):
    """A microphone whose stream opened (capture state prepared exactly as after PortAudio's open)
    but whose callback never comes: a muted device, or one held by another program."""

    def start(self) -> None:
        self._begin(SAMPLE_RATE_HZ)


def test_microphone_that_opens_but_delivers_nothing_is_reported(extractors, caplog) -> None:
    import torch

    from engines.eager import EagerEngine
    from msrg.model import MSRG
    from realtime.pipeline import Pipeline, PipelineOptions

    torch.manual_seed(0)
    clock = StreamClock()
    got: list[tuple[float, messages.Message]] = []
    engine = EagerEngine(MSRG().eval())
    pipeline = Pipeline(PipelineOptions(), [SilentMicrophone(clock)], engine, extractors,
                        clock=clock, live=True,
                        on_message=lambda m: got.append((time.monotonic() - t0, m)))  # fmt: skip
    grace = SilentMicrophone.startup_grace_s
    caplog.set_level(logging.WARNING, logger="realtime.pipeline")
    t0 = time.monotonic()
    pipeline.start()
    try:
        deadline = t0 + grace + 10.0
        while time.monotonic() < deadline and not any(
            isinstance(m, messages.StatusMessage) and m.sources.microphone == "lost" for _, m in got
        ):
            time.sleep(0.1)
    finally:
        pipeline.stop()
    status = [(t, m) for t, m in got if isinstance(m, messages.StatusMessage)]
    lost = [(t, m) for t, m in status if m.sources.microphone == "lost"]
    assert lost, [m.sources for _, m in status]
    t_lost, first_lost = lost[0]
    assert t_lost > grace  # the first silence was start-up
    assert all(m.sources.microphone == "ok" for t, m in status if t < 1.0)
    assert first_lost.errors >= 1 and "since it opened" in first_lost.last_error
    assert any("microphone lost: nothing since it opened" in r.getMessage() for r in caplog.records)
