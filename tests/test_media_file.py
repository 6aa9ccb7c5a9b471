"""File replay on small media files generated with ffmpeg: mixed, video-only, audio-only, broken."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from realtime.clock import StreamClock
from realtime.sources.base import SourceError
from realtime.sources.media_file import MediaFileOptions, MediaFileSource
from realtime.types import SAMPLE_RATE_HZ, AudioBlock, VideoFrame

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")

TONE_HZ = 440
FPS = 10


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("media")
    video_in = ["-f", "lavfi", "-i", f"testsrc=size=160x120:rate={FPS}"]
    tone_in = ["-f", "lavfi", "-i", f"sine=frequency={TONE_HZ}:sample_rate=44100"]
    files = {name: folder / name for name in
             ("mixed.mp4", "video.mp4", "audio.wav", "audio.m4a", "subs.mkv", "garbage.mp4")}
    ffmpeg(*video_in, *tone_in, "-t", "2", "-c:v", "libx264", "-pix_fmt", "yuv420p",
           "-c:a", "aac", "-ac", "2", str(files["mixed.mp4"]))
    ffmpeg(*video_in, "-t", "2", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(files["video.mp4"]))
    ffmpeg(*tone_in, "-t", "1.5", "-ar", "22050", str(files["audio.wav"]))
    ffmpeg(*tone_in, "-t", "1.5", "-c:a", "aac", str(files["audio.m4a"]))
    srt = folder / "subs.srt"
    srt.write_text("1\n00:00:00,000 --> 00:00:01,000\nhello\n")
    ffmpeg("-i", str(srt), "-c:s", "srt", str(files["subs.mkv"]))
    files["garbage.mp4"].write_bytes(np.random.default_rng(0).bytes(4096))
    return files


def replay(path: Path, **options) -> list[VideoFrame | AudioBlock]:
    source = MediaFileSource(MediaFileOptions(path, **options))
    source.start()
    records = []
    while (record := source.read(timeout_s=1.0)) is not None:
        records.append(record)
    assert source.finished
    source.stop()
    return records


def split(records):
    video = [r for r in records if isinstance(r, VideoFrame)]
    audio = [r for r in records if isinstance(r, AudioBlock)]
    return video, audio


def dominant_hz(samples: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.argmax(spectrum) * SAMPLE_RATE_HZ / len(samples))


def test_mixed_file_interleaves_video_and_audio_in_time_order(media) -> None:
    records = replay(media["mixed.mp4"])
    video, audio = split(records)
    assert len(video) == 2 * FPS
    assert [f.seq for f in video] == list(range(len(video)))
    assert [b.seq for b in audio] == list(range(len(audio)))
    assert [f.t_s for f in video] == pytest.approx([i / FPS for i in range(len(video))])
    available = [MediaFileSource.available_s(r) for r in records]
    assert available == sorted(available)
    kinds = [type(r) for r in records[:10]]
    assert VideoFrame in kinds and AudioBlock in kinds  # interleaved, not one stream then the other
    assert video[0].image.shape == (120, 160, 3) and video[0].image.dtype == np.uint8
    assert abs(audio[0].t_start_s) < 0.05
    for block in audio[:-1]:
        assert block.samples.shape == (SAMPLE_RATE_HZ // 10,) and block.samples.dtype == np.float32
    for a, b in zip(audio, audio[1:], strict=False):  # contiguous blocks
        assert b.t_start_s == pytest.approx(a.t_end_s)
    signal = np.concatenate([b.samples for b in audio])
    assert abs(len(signal) / SAMPLE_RATE_HZ - 2.0) < 0.1
    assert dominant_hz(signal[: SAMPLE_RATE_HZ]) == pytest.approx(TONE_HZ, abs=2)


def test_replay_is_deterministic(media) -> None:
    first, second = replay(media["mixed.mp4"]), replay(media["mixed.mp4"])
    assert len(first) == len(second)
    for a, b in zip(first, second, strict=True):
        assert type(a) is type(b) and a.seq == b.seq
        if isinstance(a, VideoFrame):
            assert a.t_s == b.t_s and np.array_equal(a.image, b.image)
        else:
            assert a.t_start_s == b.t_start_s and np.array_equal(a.samples, b.samples)


def test_video_only_file(media) -> None:
    video, audio = split(replay(media["video.mp4"]))
    assert len(video) == 2 * FPS and not audio


@pytest.mark.parametrize("name", ["audio.wav", "audio.m4a"])
def test_audio_only_file(media, name) -> None:
    video, audio = split(replay(media[name]))
    assert not video
    signal = np.concatenate([b.samples for b in audio])
    assert abs(len(signal) / SAMPLE_RATE_HZ - 1.5) < 0.1
    assert np.abs(signal).max() <= 1.0
    assert dominant_hz(signal[: SAMPLE_RATE_HZ]) == pytest.approx(TONE_HZ, abs=2)


def test_offset_loops_and_stream_selection(media) -> None:
    once = replay(media["mixed.mp4"], use_audio=False)
    twice = replay(media["mixed.mp4"], use_audio=False, loops=2, t_offset_s=10.0)
    assert len(twice) == 2 * len(once)
    times = [f.t_s for f in twice]
    assert times[0] == pytest.approx(10.0)
    assert times[len(once)] == pytest.approx(12.0)  # second pass starts where the first ended
    assert np.all(np.diff(times) > 0)
    assert [f.seq for f in twice] == list(range(len(twice)))


def test_realtime_pacing_follows_the_stream_clock(media) -> None:
    clock = StreamClock()
    source = MediaFileSource(MediaFileOptions(media["audio.wav"], realtime=True), clock)
    source.start()
    lags = []
    while not source.finished:
        record = source.read(timeout_s=0.2)
        if record is not None:
            lags.append(clock.now() - record.t_end_s)  # audio is due when its last sample is
    assert 0.0 <= min(lags) and max(lags) < 0.1
    assert clock.now() >= 1.4


def test_stop_interrupts_a_realtime_wait(media) -> None:
    source = MediaFileSource(MediaFileOptions(media["mixed.mp4"], realtime=True,
                                              t_offset_s=60.0))
    source.start()
    threading.Timer(0.1, source.stop).start()
    start = time.perf_counter()
    assert source.read(timeout_s=5.0) is None
    assert time.perf_counter() - start < 1.0 and source.finished


@pytest.mark.parametrize(
    ("name", "expected"),
    [("garbage.mp4", "could not be read"), ("subs.mkv", "no video or audio"),
     ("missing.mp4", "not found")],
)
def test_unusable_files_give_one_line_errors(media, tmp_path, name, expected) -> None:
    path = media.get(name, tmp_path / name)
    with pytest.raises(SourceError) as info:
        MediaFileSource(MediaFileOptions(path)).start()
    message = str(info.value)
    assert "\n" not in message and str(path) in message and expected in message
