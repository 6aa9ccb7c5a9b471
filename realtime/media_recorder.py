"""Raw media recording (`--record-media`): the session's audio as a 16 kHz mono 16-bit WAV and its
video frames as H.264 in Matroska (MKV), in the recording folder, readable by the user alone.
Raw media is a person's face and voice: it goes to these files and nowhere else (never on the
ZeroMQ bus).

Both files stay playable if the process dies at any moment, because a recording is most wanted
when something went wrong:
- the WAV's two size fields are rewritten after every block, so the file on disk is always a
  complete WAV of everything written so far (a kill between the samples and the header loses
  only that block from the header's count);
- Matroska is written as a sequence of clusters, one per keyframe (a keyframe a second), and
  needs nothing at its end to be played, so a kill loses at most the last second; a normal stop
  (end of input, Ctrl-C, SIGTERM) writes every frame and the seek index. (A fragmented MP4 is
  as robust, but drops the time of its first frame: a camera's first frame, at 0.1 s, would
  move to 0.)

Timeline: WAV sample n is at stream time n / 16000 s (audio before the first block and across
gaps, e.g. after a device overflow, is silence), and every frame keeps its capture time as its
presentation time, so both files line up with the stream times of the published messages.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import numpy as np

from realtime.recorder import FILE_MODE
from realtime.types import SAMPLE_RATE_HZ, AudioBlock, VideoFrame

log = logging.getLogger(__name__)

_INT16_MAX = 32767
_WAV_HEADER_BYTES = 44
_WAV_MAX_DATA_BYTES = 0xFFFFFFFF - (_WAV_HEADER_BYTES - 8)  # RIFF sizes are 32-bit
_JITTER_SAMPLES = 2  # block times are float sums: a block this close is contiguous
_VIDEO_TIME_BASE = Fraction(1, 1000)  # frame times to the millisecond (capture is not regular)
_KEYFRAME_EVERY = 30  # frames: one cluster a second at 30 fps, the most a kill can lose
# Speed over size: the camera, face and voice extractors and Whisper share two cores.
_X264_OPTIONS = {"preset": "ultrafast", "tune": "zerolatency", "crf": "23"}


class MediaRecorderError(RuntimeError):
    """Writing a media file failed; one line naming the file. That file stops being written."""


def _create_private(path: Path) -> BinaryIO:
    """A new file at `path`, FILE_MODE from its first byte; never overwrites (O_EXCL)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    os.fchmod(fd, FILE_MODE)  # os.open's mode is filtered by the umask
    return open(fd, "wb")


def _wav_header(data_bytes: int) -> bytes:
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF", _WAV_HEADER_BYTES - 8 + data_bytes, b"WAVE",
        b"fmt ", 16, 1, 1, SAMPLE_RATE_HZ, SAMPLE_RATE_HZ * 2, 2, 16,
        b"data", data_bytes,
    )  # fmt: skip


class WavWriter:
    """16 kHz mono 16-bit PCM, placed on the stream clock; the header is valid after each write."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = _create_private(path)
        self._file.write(_wav_header(0))
        self._file.flush()
        self.samples = 0  # samples written, silence included
        self.gap_samples = 0  # silence written where no audio came

    def write(self, t_start_s: float, samples: np.ndarray) -> None:
        start = int(round(t_start_s * SAMPLE_RATE_HZ))
        if start < self.samples - _JITTER_SAMPLES:  # overlaps what is written: keep the rest
            samples = samples[self.samples - start :]
        elif start > self.samples + _JITTER_SAMPLES:  # audio is missing: silence, on time
            gap = np.zeros(start - self.samples, np.float32)
            self.gap_samples += len(gap)
            samples = np.concatenate([gap, samples])
        if len(samples) == 0:
            return
        x = np.nan_to_num(np.asarray(samples, dtype=np.float32), nan=0.0, posinf=1.0, neginf=-1.0)
        pcm = np.round(np.clip(x, -1.0, 1.0) * _INT16_MAX).astype("<i2").tobytes()
        data_bytes = 2 * self.samples + len(pcm)
        if data_bytes > _WAV_MAX_DATA_BYTES:
            raise MediaRecorderError(f"{self.path} reached the 4 GB limit of a WAV file")
        self._file.seek(0, os.SEEK_END)
        self._file.write(pcm)
        self.samples += len(pcm) // 2
        self._file.seek(0)
        self._file.write(_wav_header(data_bytes))  # the samples first, then the count of them
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class VideoWriter:
    """H.264 in Matroska; frames keep their capture times. The stream is set up at the first
    frame, whose size the file keeps (a later frame of another size, e.g. a reopened camera, is
    scaled)."""

    def __init__(self, path: Path) -> None:
        import av  # PyAV: already how media files are read (realtime/sources/media_file.py)

        self.path = path
        self._file = _create_private(path)
        try:
            self._container = av.open(self._file, "w", format="matroska")
        except Exception:
            self._file.close()
            raise
        self._stream = None
        self._last_pts = -1
        self.frames = 0

    def _open_stream(self, width: int, height: int):
        stream = self._container.add_stream("libx264", rate=30)  # a hint: times come per frame
        stream.width, stream.height = width - width % 2, height - height % 2  # 4:2:0 needs even
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = _VIDEO_TIME_BASE
        stream.codec_context.gop_size = _KEYFRAME_EVERY
        stream.codec_context.thread_count = 1
        stream.options = dict(_X264_OPTIONS)
        return stream

    def write(self, t_s: float, image: np.ndarray) -> None:
        import av

        height, width = image.shape[:2]
        if self._stream is None:
            self._stream = self._open_stream(width, height)
        frame = av.VideoFrame.from_ndarray(image, format="bgr24")
        if (frame.width, frame.height) != (self._stream.width, self._stream.height):
            frame = frame.reformat(width=self._stream.width, height=self._stream.height)
        # Strictly increasing, as the muxer requires, even if two captures share a millisecond.
        pts = max(int(round(t_s / _VIDEO_TIME_BASE)), self._last_pts + 1)
        frame.pts, frame.time_base = pts, _VIDEO_TIME_BASE
        self._last_pts = pts
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self._file.flush()  # finished clusters reach the disk, not a buffer a kill would lose
        self.frames += 1

    def close(self) -> None:
        try:
            if self._stream is not None:
                for packet in self._stream.encode(None):  # the encoder's last frames
                    self._container.mux(packet)
            self._container.close()
        finally:
            self._file.close()


class MediaRecorder:
    """`audio-SESSION.wav` and `video-SESSION.mkv` in `folder`, each created at its first record
    (a microphone alone makes no video file). Thread-safe: audio and video may come from
    different threads, and `close` from a third. A write that fails raises MediaRecorderError
    once and stops that file; the other goes on."""

    def __init__(self, folder: str | Path, session: str) -> None:
        self.folder = Path(folder)
        self.audio_path = self.folder / f"audio-{session}.wav"
        self.video_path = self.folder / f"video-{session}.mkv"
        self._wav: WavWriter | None = None
        self._video: VideoWriter | None = None
        self._failed: set[str] = set()
        self._audio_lock = threading.Lock()  # separate locks: encoding a frame never
        self._video_lock = threading.Lock()  # holds up the audio path
        self.closed = False

    def write_audio(self, block: AudioBlock) -> None:
        with self._audio_lock:
            if self.closed or "audio" in self._failed:
                return
            try:
                if self._wav is None:
                    self._wav = WavWriter(self.audio_path)
                self._wav.write(block.t_start_s, block.samples)
            except (OSError, MediaRecorderError) as exc:
                writer, self._wav = self._wav, None
                self._fail("audio", writer, self.audio_path, exc)

    def write_frame(self, frame: VideoFrame) -> None:
        with self._video_lock:
            if self.closed or "video" in self._failed:
                return
            try:
                if self._video is None:
                    self._video = VideoWriter(self.video_path)
                self._video.write(frame.t_s, frame.image)
            except Exception as exc:  # OSError, or FFmpeg's own errors (av.error.FFmpegError)
                writer, self._video = self._video, None
                self._fail("video", writer, self.video_path, exc)

    def _fail(self, kind: str, writer: WavWriter | VideoWriter | None, path: Path,
              exc: BaseException) -> None:  # fmt: skip
        """Stop writing `kind` (closing what was written, so it stays playable) and say why."""
        self._failed.add(kind)
        if writer is not None:
            try:
                writer.close()
            except Exception:
                log.debug("closing %s after a failure", path, exc_info=True)
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise MediaRecorderError(f"{kind} recording to {path} stopped: {reason}") from None

    def close(self) -> None:
        """Finish both files; idempotent. Says how much each holds, and any silence filled in."""
        with self._audio_lock, self._video_lock:
            if self.closed:
                return
            self.closed = True
            if self._wav is not None:
                self._wav.close()
                wav = self._wav
                gap = f", {wav.gap_samples / SAMPLE_RATE_HZ:.1f} s of it filled with silence" \
                    if wav.gap_samples else ""  # fmt: skip
                log.info("audio recorded: %s (%.1f s%s)", wav.path,
                         wav.samples / SAMPLE_RATE_HZ, gap)  # fmt: skip
            if self._video is not None:
                try:
                    self._video.close()
                except Exception as exc:
                    log.warning("video recording %s did not close cleanly: %s",
                                self._video.path, exc)  # fmt: skip
                else:
                    log.info("video recorded: %s (%d frames)", self._video.path,
                             self._video.frames)  # fmt: skip
