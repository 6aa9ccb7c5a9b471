"""Capture while the models load: a live source started before the pipeline, drained into a
bounded buffer, and handed over with everything it captured.

    early = EarlyCapture(microphone)   # opens the device now; a thread keeps draining it
    ...                                # models load (seconds)
    pipeline.start()                   # early.start() is a no-op; read() gives the backlog first

The device's own queue holds ~2 s (MicrophoneOptions.queue_blocks), far less than a model load,
so a thread moves its records into this buffer as they come. Limits: at most
`EarlyOptions.audio_limit_s` seconds of audio (60 s: 3.8 MB of float32 at 16 kHz) and the newest
`EarlyOptions.frames` video frames (a face cannot be analysed before its network loads, and a
640x480 frame is 0.9 MB); beyond them the oldest are dropped and counted as dropped by the
source's stats. The backlog leaves in audio blocks of up to `merge_s` seconds, so that the
pipeline's live audio queue (64 blocks) takes a minute of it without dropping any.
"""

from __future__ import annotations

import collections
import logging
import threading
from dataclasses import dataclass, replace

import numpy as np

from realtime.sources.base import Source, SourceStats
from realtime.types import AudioBlock, VideoFrame

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EarlyOptions:
    audio_limit_s: float = 60.0  # audio kept while loading; the oldest goes beyond it
    frames: int = 4  # newest video frames kept while loading
    merge_s: float = 2.0  # backlog audio handed over in blocks of up to this long


class EarlyCapture(Source):
    """Wraps a live source: started at construction, buffered until the pipeline reads it."""

    def __init__(self, inner: Source, options: EarlyOptions | None = None) -> None:
        self.inner = inner
        self.options = options or EarlyOptions()
        self.name = inner.name
        self.has_video, self.has_audio = inner.has_video, inner.has_audio
        self.startup_grace_s = inner.startup_grace_s
        self._audio: collections.deque[AudioBlock] = collections.deque()
        self._frames: collections.deque[VideoFrame] = collections.deque(maxlen=self.options.frames)
        self._audio_s = 0.0
        self._lock = threading.Lock()
        self._handover = threading.Event()
        self.dropped_audio = self.dropped_frames = 0
        self.captured_audio_s = 0.0  # seconds of audio captured before the hand-over
        inner.start()
        self._drain_thread = threading.Thread(target=self._drain, name=f"early-{inner.name}",
                                              daemon=True)  # fmt: skip
        self._drain_thread.start()

    def _drain(self) -> None:
        while not self._handover.is_set():
            record = self.inner.read(0.05)
            if record is None:
                if self.inner.finished:
                    return
                continue
            with self._lock:
                if isinstance(record, VideoFrame):
                    if len(self._frames) == self._frames.maxlen:
                        self.dropped_frames += 1
                    self._frames.append(record)
                    continue
                self._audio.append(record)
                self._audio_s += record.duration_s
                self.captured_audio_s += record.duration_s
                while self._audio_s > self.options.audio_limit_s and len(self._audio) > 1:
                    self._audio_s -= self._audio.popleft().duration_s
                    self.dropped_audio += 1

    def start(self) -> None:
        """The pipeline starts its sources: this one runs already; stop buffering."""
        self._handover.set()
        self._drain_thread.join(2.0)
        with self._lock:
            backlog = self._merged(list(self._audio))
            self._audio.clear()
            frames = list(self._frames)
            self._frames.clear()
        self._backlog: collections.deque = collections.deque(
            sorted(frames + backlog, key=lambda r: r.t_s if isinstance(r, VideoFrame)
                   else r.t_start_s)  # fmt: skip
        )
        if self.captured_audio_s:
            log.info("%s: %.1f s of audio captured while the models loaded, processed now",
                     self.name, self.captured_audio_s)  # fmt: skip

    def _merged(self, blocks: list[AudioBlock]) -> list[AudioBlock]:
        """Contiguous blocks joined into blocks of up to merge_s seconds."""
        out: list[AudioBlock] = []
        for block in blocks:
            last = out[-1] if out else None
            if (
                last is not None
                and abs(block.t_start_s - last.t_end_s) < 1e-3
                and last.duration_s + block.duration_s <= self.options.merge_s
            ):
                out[-1] = replace(last, samples=np.concatenate([last.samples, block.samples]))
            else:
                out.append(block)
        return out

    def read(self, timeout_s: float) -> VideoFrame | AudioBlock | None:
        backlog = getattr(self, "_backlog", None)
        if backlog:
            return backlog.popleft()
        return self.inner.read(timeout_s)

    @property
    def finished(self) -> bool:
        return self.inner.finished and not getattr(self, "_backlog", None)

    def stop(self) -> None:
        self._handover.set()
        self.inner.stop()

    def stats(self) -> SourceStats:
        st = self.inner.stats()
        with self._lock:
            return replace(st, audio_dropped=st.audio_dropped + self.dropped_audio,
                           frames_dropped=st.frames_dropped + self.dropped_frames)  # fmt: skip

    def __getattr__(self, name: str):  # noqa: ANN204 - probe(), device_rate_hz, ... of the inner
        return getattr(self.__dict__["inner"], name)
