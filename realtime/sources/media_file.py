"""Replay of a media file (video with audio, video alone, audio alone) as a Source, via PyAV.

Records are stamped with media time (seconds from the container's start) plus `t_offset_s`, and
delivered in the order a live capture would make them available: a video frame at its time `t_s`,
an audio block when its last sample exists (`t_end_s`). Video and audio are decoded by two
independent demuxers of the same file and merged on that key, so the order never depends on how
the file interleaves its packets. Decoding happens in `read` on the caller's thread: nothing is
dropped and the same file gives the same records every time.

Audio: resampled by FFmpeg's resampler to SAMPLE_RATE_HZ mono float32 and cut into blocks of
`block_samples` (default 1600 = 100 ms, one model time step); block times are counted in samples
from the first audio frame, so they never drift with codec frame sizes. The last block may be
shorter. Pacing: `realtime=True` holds each record until the stream clock reaches its availability
time; otherwise records come as fast as they decode.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from realtime.clock import StreamClock
from realtime.sources.base import MIN_AUDIO_RATE_HZ, Source, SourceError, SourceStats
from realtime.types import SAMPLE_RATE_HZ, AudioBlock, VideoFrame

log = logging.getLogger(__name__)

DEFAULT_BLOCK_SAMPLES = SAMPLE_RATE_HZ // 10  # 100 ms


@dataclass(frozen=True)
class MediaFileOptions:
    path: Path
    realtime: bool = False  # True: pace records at their stream time; False: as fast as possible
    t_offset_s: float = 0.0  # added to every media time
    loops: int = 1  # play the file this many times back to back (the demo loops its clip)
    block_samples: int = DEFAULT_BLOCK_SAMPLES  # audio block size at SAMPLE_RATE_HZ
    use_video: bool = True  # False ignores the file's video stream
    use_audio: bool = True  # False ignores the file's audio stream

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))
        if self.loops < 1 or self.block_samples < 1:
            raise ValueError("loops and block_samples must be >= 1")


Record = VideoFrame | AudioBlock


def _one_line(exc: BaseException) -> str:
    # FFmpeg errors carry a clean reason in strerror; str() repeats the errno and the path.
    text = str(getattr(exc, "strerror", None) or exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _origin_s(container: av.container.InputContainer) -> float:
    """Media time zero: the container's start, shared by both streams (so A/V sync is kept)."""
    return container.start_time / av.time_base if container.start_time is not None else 0.0


def _video_frames(path: Path) -> Iterator[tuple[float, np.ndarray]]:
    """(t_s, (H, W, 3) uint8 BGR) per decoded frame, media time."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame threads decode ahead; output order is unchanged
        origin_s = _origin_s(container)
        rate = float(stream.average_rate) if stream.average_rate else 0.0
        try:
            for index, frame in enumerate(container.decode(stream)):
                t_s = frame.time - origin_s if frame.time is not None else index / (rate or 1.0)
                yield t_s, frame.to_ndarray(format="bgr24")
        except av.error.FFmpegError as exc:
            log.warning("%s: video decoding stopped early: %s", path, _one_line(exc))


def _audio_blocks(path: Path, block_samples: int) -> Iterator[tuple[float, np.ndarray]]:
    """(t_start_s, (N,) float32 mono at SAMPLE_RATE_HZ) per block, media time."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        origin_s = _origin_s(container)
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE_HZ)
        first_s: float | None = None
        pending: list[np.ndarray] = []  # resampled chunks not yet cut into blocks
        n_pending = n_emitted = 0

        def decoded() -> Iterator[av.AudioFrame | None]:
            try:
                yield from container.decode(stream)
            except av.error.FFmpegError as exc:
                log.warning("%s: audio decoding stopped early: %s", path, _one_line(exc))
            yield None  # flushes the resampler

        for frame in decoded():
            if first_s is None and frame is not None:
                first_s = (frame.time - origin_s) if frame.time is not None else 0.0
            for out in resampler.resample(frame):
                chunk = out.to_ndarray().reshape(-1).astype(np.float32, copy=False)
                pending.append(chunk)
                n_pending += len(chunk)
            while n_pending >= block_samples or (frame is None and n_pending > 0):
                joined = np.concatenate(pending)
                block, rest = joined[:block_samples], joined[block_samples:]
                pending, n_pending = [rest], len(rest)
                yield (first_s or 0.0) + n_emitted / SAMPLE_RATE_HZ, block.copy()
                n_emitted += len(block)


class MediaFileSource(Source):
    """A media file delivered as VideoFrame and AudioBlock records, deterministically.

    `has_video` / `has_audio` are known once `start()` has probed the file.
    """

    name = "file"

    def __init__(self, options: MediaFileOptions, clock: StreamClock | None = None) -> None:
        self.options = options
        self.clock = clock
        self._records: Iterator[Record] | None = None
        self._pending: Record | None = None
        self._done = False
        self._stop = threading.Event()  # lets stop() interrupt a realtime wait
        self._reading = threading.Lock()  # held while read() advances the decoders
        self._stats = SourceStats()
        self.has_video = self.has_audio = False
        self.video_rate_hz = 0.0

    def probe(self) -> None:
        """Check the file can be used (exists, decodes, has a usable stream) and learn its
        streams; cheap, so a session calls it before loading models. One-line SourceError."""
        path = self.options.path
        if not path.is_file():
            raise SourceError(f"media file {path} not found; check the path (or try --demo)")
        try:
            with av.open(str(path)) as container:
                self.has_video = self.options.use_video and bool(container.streams.video)
                self.has_audio = self.options.use_audio and bool(container.streams.audio)
                if self.has_video:
                    rate = container.streams.video[0].average_rate
                    self.video_rate_hz = float(rate) if rate else 0.0
                audio_rate_hz = container.streams.audio[0].rate if self.has_audio else None
        except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
            raise SourceError(
                f"media file {path} could not be read as video or audio ({_one_line(exc)}); "
                f"check it with `ffprobe {path}` or choose another file"
            ) from exc
        if not (self.has_video or self.has_audio):
            raise SourceError(
                f"media file {path} has no video or audio stream to use; choose another file"
            )
        if audio_rate_hz is not None and audio_rate_hz < MIN_AUDIO_RATE_HZ:
            raise SourceError(
                f"media file {path} has audio at {audio_rate_hz} Hz, below the "
                f"{MIN_AUDIO_RATE_HZ} Hz that speech analysis needs; use a recording at "
                f"{MIN_AUDIO_RATE_HZ} Hz or more (any higher rate is resampled)"
            )

    def start(self) -> None:
        self.probe()
        if self.clock is None:
            self.clock = StreamClock()
        self._records = self._all_loops()

    @staticmethod
    def available_s(record: Record) -> float:
        """When a live capture would have handed the record over (frame: t_s; block: t_end_s)."""
        return record.t_s if isinstance(record, VideoFrame) else record.t_end_s

    def _one_pass(self, offset_s: float, seqs: dict[str, itertools.count]) -> Iterator[Record]:
        o = self.options
        streams: list[Iterator[Record]] = []
        if self.has_video:
            streams.append(
                VideoFrame(seq=next(seqs["video"]), t_s=offset_s + t_s, image=image)
                for t_s, image in _video_frames(o.path)
            )
        if self.has_audio:
            streams.append(
                AudioBlock(seq=next(seqs["audio"]), t_start_s=offset_s + t_s, samples=samples)
                for t_s, samples in _audio_blocks(o.path, o.block_samples)
            )
        # Ties go to video (listed first): a frame and a block ending at the same instant.
        return heapq.merge(*streams, key=self.available_s)

    def _all_loops(self) -> Iterator[Record]:
        seqs = {"video": itertools.count(), "audio": itertools.count()}
        frame_s = 1.0 / self.video_rate_hz if self.video_rate_hz else 0.0
        offset_s = self.options.t_offset_s
        for _ in range(self.options.loops):
            end_s = offset_s
            for record in self._one_pass(offset_s, seqs):
                if isinstance(record, VideoFrame):
                    end_s = max(end_s, record.t_s + frame_s)  # a frame lasts one frame period
                else:
                    end_s = max(end_s, record.t_end_s)
                yield record
            if end_s == offset_s:
                break  # an empty pass: looping would never advance
            offset_s = end_s  # the next pass starts where this one's media ended

    def read(self, timeout_s: float) -> Record | None:
        with self._reading:
            if self._stop.is_set():
                return None
            return self._read(timeout_s)

    def _read(self, timeout_s: float) -> Record | None:
        if self._records is None:
            raise RuntimeError("MediaFileSource.read() before start()")
        if self._pending is None and not self._done:
            self._pending = next(self._records, None)
            self._done = self._pending is None
        record = self._pending
        if record is None:
            return None
        if self.options.realtime:
            assert self.clock is not None
            wait_s = self.available_s(record) - self.clock.now()
            if wait_s > timeout_s:
                self._stop.wait(max(timeout_s, 0.0))
                return None
            if wait_s > 0 and self._stop.wait(wait_s):
                return None
        self._pending = None
        if isinstance(record, VideoFrame):
            self._stats.frames += 1
        else:
            self._stats.audio_blocks += 1
        return record

    @property
    def finished(self) -> bool:
        return self._done or self._stop.is_set()

    def stop(self) -> None:
        self._stop.set()
        # Another thread may be inside read(), advancing the decoder: closing a running
        # generator raises, so wait for that read to return (it notices the stop) and close then.
        if self._reading.acquire(timeout=2.0):
            try:
                self._close_records()
            finally:
                self._reading.release()
        self._done = True

    def _close_records(self) -> None:
        if self._records is not None:
            close = getattr(self._records, "close", None)
            if close is not None:
                # Closing the chain drops the decoder generators; CPython finalises them at once,
                # and their `with av.open(...)` blocks close the containers.
                close()
            self._records = None

    def stats(self) -> SourceStats:
        return SourceStats(frames=self._stats.frames, audio_blocks=self._stats.audio_blocks)
