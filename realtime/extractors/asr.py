"""Speech recognition: faster-whisper (Whisper base, int8 on CPU) and a worker thread around it.

`SpeechRecognizer.transcribe` is synchronous and deterministic (greedy, temperature 0, no
conditioning on earlier text). `AsrWorker` runs it off the capture and step paths: speech
segments go into a small inbox, results come out through a callback or a queue. Finals are
never superseded; a newer partial replaces an older one that has not started yet, because a
partial of a growing segment is stale as soon as a longer one exists.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from realtime.extractors.whisper_weights import AsrModelError, ensure_model_dir
from realtime.queues import DropOldestQueue
from realtime.types import SAMPLE_RATE_HZ, Word

log = logging.getLogger(__name__)

__all__ = [
    "AsrModelError",
    "AsrOptions",
    "AsrRequest",
    "AsrResult",
    "AsrWorker",
    "SpeechRecognizer",
]


@dataclass(frozen=True)
class AsrOptions:
    language: str = "en"
    beam_size: int = 1  # greedy: ~20 % faster than beam 5 on base, same words on clear speech
    # CTranslate2 intra-op threads. One: on a busy 2-core machine two threads measured 2x slower
    # (they wait on each other while capture, face and voice hold the other core).
    cpu_threads: int = 1
    compute_type: str = "int8"
    model_dir: Path | None = None  # None: the joined package weights in the cache folder
    no_speech_threshold: float = 0.6  # Whisper's own: skip windows it judges silent

    def __post_init__(self) -> None:
        if self.beam_size < 1 or self.cpu_threads < 0:
            raise ValueError("AsrOptions.beam_size must be >= 1 and cpu_threads >= 0")


class SpeechRecognizer:
    """Whisper base on the CPU. transcribe((N,) float32 16 kHz, t_start_s) -> list[Word]."""

    def __init__(self, options: AsrOptions | None = None) -> None:
        self.options = options or AsrOptions()
        try:
            from faster_whisper import WhisperModel
        except ImportError:
            raise AsrModelError(
                "faster-whisper is not installed; `pip install faster-whisper`"
            ) from None
        folder = self.options.model_dir or ensure_model_dir()
        self.model_dir = Path(folder)
        self._model = WhisperModel(
            str(self.model_dir),
            device="cpu",
            compute_type=self.options.compute_type,
            cpu_threads=self.options.cpu_threads,
            local_files_only=True,  # a folder path; never a hub lookup
        )

    def transcribe(self, samples: np.ndarray, t_start_s: float) -> list[Word]:
        """Words of one speech segment, with times on the stream clock (t_start_s + offset)."""
        audio = np.ascontiguousarray(samples, dtype=np.float32)  # (N,) at SAMPLE_RATE_HZ
        duration_s = len(audio) / SAMPLE_RATE_HZ
        if duration_s < 0.1:
            return []
        segments, _info = self._model.transcribe(
            audio,
            language=self.options.language,
            beam_size=self.options.beam_size,
            temperature=0.0,  # no sampling fallback: replay must give the same words
            condition_on_previous_text=False,
            word_timestamps=True,
            vad_filter=False,  # segments are cut by our own VAD
            no_speech_threshold=self.options.no_speech_threshold,
        )
        words: list[Word] = []
        for segment in segments:  # a generator: decoding happens while iterating
            for w in segment.words or ():
                text = w.word.strip()
                if not text:
                    continue
                start_s = min(max(w.start, 0.0), duration_s)
                end_s = min(max(w.end, start_s), duration_s)
                words.append(
                    Word(text, t_start_s + start_s, t_start_s + end_s, float(w.probability))
                )
        return words


@dataclass(frozen=True)
class AsrRequest:
    segment_id: int
    t_start_s: float  # stream time of samples[0]
    samples: np.ndarray  # (N,) float32 at SAMPLE_RATE_HZ
    final: bool  # False: a partial of a segment that is still growing

    @property
    def t_end_s(self) -> float:
        return self.t_start_s + len(self.samples) / SAMPLE_RATE_HZ


@dataclass(frozen=True)
class AsrResult:
    segment_id: int
    t_start_s: float
    t_end_s: float
    final: bool
    words: tuple[Word, ...]
    compute_s: float  # wall seconds spent in transcribe
    queued_s: float  # wall seconds between submit and the start of transcribe

    @property
    def text(self) -> str:
        return " ".join(w.text for w in self.words)


@dataclass
class AsrStats:
    finals: int = 0
    partials: int = 0
    partials_superseded: int = 0  # replaced by a newer partial before they ran
    finals_dropped: int = 0  # only when the inbox of finals overflowed
    errors: int = 0


@dataclass(frozen=True)
class _Entry:
    request: AsrRequest
    t_submit_s: float  # monotonic


class _Inbox:
    """Bounded finals FIFO plus one slot for the newest partial; `take` prefers finals."""

    def __init__(self, max_finals: int, stats: AsrStats) -> None:
        self._finals: collections.deque[_Entry] = collections.deque()
        self._partial: _Entry | None = None
        self._max_finals = max_finals
        self._closed_ids: set[int] = set()  # segments whose final was submitted
        self._cond = threading.Condition()
        self._stats = stats

    def put(self, request: AsrRequest) -> None:
        entry = _Entry(request, time.monotonic())
        with self._cond:
            if request.final:
                if len(self._finals) >= self._max_finals:
                    self._finals.popleft()
                    self._stats.finals_dropped += 1
                    log.warning("asr: inbox full, dropped the oldest final segment")
                self._finals.append(entry)
                self._closed_ids.add(request.segment_id)
                if (
                    self._partial is not None
                    and self._partial.request.segment_id == request.segment_id
                ):
                    self._partial = None  # the final covers it
                    self._stats.partials_superseded += 1
            elif request.segment_id not in self._closed_ids:
                if self._partial is not None:
                    self._stats.partials_superseded += 1
                self._partial = entry
            self._cond.notify()

    def take(self, timeout_s: float) -> _Entry | None:
        with self._cond:
            ready = self._cond.wait_for(
                lambda: bool(self._finals) or self._partial is not None, timeout_s
            )
            if not ready:
                return None
            if self._finals:
                return self._finals.popleft()
            entry, self._partial = self._partial, None
            return entry

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()


class AsrWorker:
    """One thread that transcribes submitted segments; stop() joins it with a timeout.

    Results go to `on_result` (called on the worker thread: keep it short and thread-safe) or,
    without a callback, into `self.results`, a bounded drop-oldest queue the consumer polls.
    """

    def __init__(
        self,
        recognizer: SpeechRecognizer,
        on_result: Callable[[AsrResult], None] | None = None,
        max_pending_finals: int = 8,
        poll_s: float = 0.5,
    ) -> None:
        self._recognizer = recognizer
        self._on_result = on_result
        self.results: DropOldestQueue[AsrResult] = DropOldestQueue(64)
        self.stats = AsrStats()
        self._inbox = _Inbox(max_pending_finals, self.stats)
        self._stop = threading.Event()
        self._poll_s = poll_s
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="asr-worker", daemon=True)
        self._thread.start()

    def submit(self, request: AsrRequest) -> None:
        """Never blocks: the capture and step threads call this."""
        self._inbox.put(request)

    def stop(self, timeout_s: float = 5.0) -> bool:
        """Stop after the segment in progress; True if the thread ended within the timeout."""
        if self._thread is None:
            return True
        self._stop.set()
        self._inbox.wake()
        self._thread.join(timeout_s)
        alive = self._thread.is_alive()
        if alive:
            log.warning("asr: worker still busy after %.1f s; leaving it as a daemon", timeout_s)
        self._thread = None
        return not alive

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _loop(self) -> None:
        while not self._stop.is_set():
            entry = self._inbox.take(self._poll_s)
            if entry is None or self._stop.is_set():
                continue
            request = entry.request
            t0 = time.monotonic()
            try:
                words = self._recognizer.transcribe(request.samples, request.t_start_s)
            except Exception:  # one bad segment must not end transcription for the session
                self.stats.errors += 1
                log.exception("asr: transcription of segment %d failed", request.segment_id)
                continue
            t1 = time.monotonic()
            if request.final:
                self.stats.finals += 1
            else:
                self.stats.partials += 1
            result = AsrResult(
                request.segment_id,
                request.t_start_s,
                request.t_end_s,
                request.final,
                tuple(words),
                compute_s=t1 - t0,
                queued_s=t0 - entry.t_submit_s,
            )
            if self._on_result is None:
                self.results.put(result)
                continue
            try:
                self._on_result(result)
            except Exception:
                log.exception("asr: result callback failed")
