"""Microphone source: the one-line error without a device, stamping, overflow and resampling.

This machine has no audio device, so opening one must fail with the one-line SourceError. The
callback and read paths are driven with synthetic blocks, exactly as PortAudio would call them.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from realtime.clock import StreamClock
from realtime.sources.base import SourceError
from realtime.sources.microphone import MicrophoneOptions, MicrophoneSource, list_microphones
from realtime.types import SAMPLE_RATE_HZ

OK = SimpleNamespace(input_overflow=False)
OVERFLOW = SimpleNamespace(input_overflow=True)


def has_input_device() -> bool:
    return bool(list_microphones())


@pytest.mark.skipif(has_input_device(), reason="a microphone is attached")
@pytest.mark.parametrize("device", [None, 7, "no-such-mic"])
def test_missing_microphone_is_one_line(device) -> None:
    source = MicrophoneSource(StreamClock(), MicrophoneOptions(device=device))
    with pytest.raises(SourceError) as info:
        source.start()
    message = str(info.value)
    assert "\n" not in message and "--list-devices" in message
    assert ("default input device" if device is None else repr(device)) in message
    source.stop()  # idempotent after a failed start
    source.stop()
    assert source.finished


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
