"""Raw media recording (--record-media): the WAV and video writers on their own (timeline, header
valid after every block, private files, a process killed mid-recording), and main.py sent
SIGTERM while recording a replay. The whole-clip check (durations, frame count) is in
test_pipeline_e2e.py, on the run it already makes."""

from __future__ import annotations

import signal
import socket
import stat
import subprocess
import sys
import textwrap
import time
import wave
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from msrg.checkpoint import save_checkpoint
from msrg.model import MSRG
from realtime.media_recorder import MediaRecorder, MediaRecorderError, WavWriter
from realtime.sources.demo import ensure_demo_clip
from realtime.types import SAMPLE_RATE_HZ, AudioBlock, VideoFrame

ROOT = Path(__file__).resolve().parent.parent


def read_wav(path: Path) -> np.ndarray:
    """(N,) int16 samples, through the standard library's reader (it trusts the header)."""
    with wave.open(str(path), "rb") as f:
        assert (f.getnchannels(), f.getsampwidth(), f.getframerate()) == (1, 2, SAMPLE_RATE_HZ)
        return np.frombuffer(f.readframes(f.getnframes()), dtype="<i2")


def video_frames(path: Path) -> list[tuple[float, tuple[int, int]]]:
    """(presentation time s, (width, height)) of every decodable frame."""
    with av.open(str(path)) as container:
        return [(float(f.time), (f.width, f.height)) for f in container.decode(video=0)]


def tone(n: int, value: float = 0.5) -> np.ndarray:
    return np.full(n, value, np.float32)


def test_wav_is_on_the_stream_clock_and_valid_after_every_block(tmp_path) -> None:
    path = tmp_path / "a.wav"
    wav = WavWriter(path)
    assert len(read_wav(path)) == 0  # a valid empty WAV before any audio
    wav.write(0.1, tone(1600))  # starts 0.1 s into the stream: silence before it
    assert len(read_wav(path)) == 3200  # readable while still being written
    wav.write(0.2, tone(1600, -0.5))
    wav.write(0.5, tone(1600))  # 0.1 s of audio missing: silence, so later audio stays on time
    wav.write(0.55, tone(1600, 0.25))  # overlaps the previous block: only the new part
    samples = read_wav(path)
    assert len(samples) == int(0.65 * SAMPLE_RATE_HZ) == wav.samples  # to the last block's end
    assert not samples[:1600].any() and (samples[1600:3200] == 16384).all()
    assert (samples[3200:4800] == -16384).all() and not samples[4800:8000].any()
    assert (samples[8000:9600] == 16384).all() and (samples[9600:] == 8192).all()
    assert wav.gap_samples == 1600 + 3200
    wav.write(0.65, np.array([np.nan, np.inf, -np.inf, 2.0], np.float32))  # never invalid PCM
    assert read_wav(path)[-4:].tolist() == [0, 32767, -32767, 32767]
    wav.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_recorder_writes_private_files_per_session_and_never_overwrites(tmp_path) -> None:
    rec = MediaRecorder(tmp_path, "s1")
    rng = np.random.default_rng(0)
    for i in range(45):  # 1.5 s at 30 fps, 640x480, with a size change (a reopened camera)
        size = (480, 640) if i < 30 else (241, 321)
        image = rng.integers(0, 255, (*size, 3), dtype=np.uint8)
        rec.write_frame(VideoFrame(i, 0.2 + i / 30, image))
    for i in range(10):
        rec.write_audio(AudioBlock(i, i * 0.1, tone(1600)))
    rec.close()
    rec.close()  # idempotent: the pipeline and the session both close it
    assert rec.audio_path.name == "audio-s1.wav" and rec.video_path.name == "video-s1.mkv"
    for path in (rec.audio_path, rec.video_path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(read_wav(rec.audio_path)) == SAMPLE_RATE_HZ
    frames = video_frames(rec.video_path)
    assert len(frames) == 45
    assert {size for _, size in frames} == {(640, 480)}  # the first frame's size throughout
    assert [round(t, 3) for t, _ in frames] == [round(0.2 + i / 30, 3) for i in range(45)]
    again = MediaRecorder(tmp_path, "s1")  # the same session id can never clobber a recording
    with pytest.raises(MediaRecorderError, match="audio-s1.wav"):
        again.write_audio(AudioBlock(0, 0.0, tone(1600)))
    again.write_audio(AudioBlock(1, 0.1, tone(1600)))  # that file is off now, quietly
    again.close()
    assert len(read_wav(rec.audio_path)) == SAMPLE_RATE_HZ


def test_a_killed_process_leaves_playable_files(tmp_path) -> None:
    """SIGKILL, so nothing is closed: the WAV holds every block, the video every finished cluster
    (a keyframe a second: at most the last second is lost)."""
    script = textwrap.dedent(f"""
        import os, signal
        import numpy as np
        from realtime.media_recorder import MediaRecorder
        from realtime.types import AudioBlock, VideoFrame
        rec = MediaRecorder({str(tmp_path)!r}, "killed")
        for i in range(25):
            rec.write_audio(AudioBlock(i, i * 0.1, np.full(1600, 0.1, np.float32)))
        for i in range(100):
            image = np.full((480, 640, 3), (i * 7) % 255, np.uint8)
            rec.write_frame(VideoFrame(i, i / 30, image))
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert len(read_wav(tmp_path / "audio-killed.wav")) == 25 * 1600
    frames = video_frames(tmp_path / "video-killed.mkv")
    assert 60 <= len(frames) <= 100, len(frames)
    assert [round(t, 3) for t, _ in frames] == [round(i / 30, 3) for i in range(len(frames))]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return save_checkpoint(MSRG().eval(), tmp_path_factory.mktemp("media") / "random.pt")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sigterm_while_recording_media_leaves_readable_files(checkpoint, tmp_path) -> None:
    folder = tmp_path / "rec"
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "main.py"), "--video", str(ensure_demo_clip()), "--headless",
         "--record", str(folder), "--record-media", "--checkpoint", str(checkpoint),
         "--engine", "eager", "--duration", "40", "--publish", f"tcp://127.0.0.1:{_free_port()}"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    output = []
    try:
        for line in proc.stdout:  # type: ignore[union-attr]
            output.append(line)
            if "steps=" in line:  # the pipeline runs and records
                break
        time.sleep(1.5)
        assert proc.poll() is None, "".join(output)
        proc.send_signal(signal.SIGTERM)
        output.append(proc.communicate(timeout=30)[0])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = "".join(output)
    assert proc.returncode == 0, text[-2000:]
    assert "Traceback" not in text and "threads still running" not in text, text[-2000:]
    (wav_path,) = folder.glob("audio-*.wav")
    (mkv_path,) = folder.glob("video-*.mkv")
    for path in (wav_path, mkv_path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    samples = read_wav(wav_path)
    assert len(samples) > SAMPLE_RATE_HZ  # more than a second was recorded
    assert wav_path.stat().st_size == 44 + 2 * len(samples)  # the header counts every sample
    frames = video_frames(mkv_path)
    assert len(frames) > 30
    # Both cover about the same stretch of the stream (the replay runs ahead of real time, and
    # both are written as records are read).
    assert abs(len(samples) / SAMPLE_RATE_HZ - frames[-1][0]) < 1.0
