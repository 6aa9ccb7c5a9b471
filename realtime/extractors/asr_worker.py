"""The speech recognition worker: one thread running `SpeechRecognizer` off the capture and step
paths. Speech segments go into a small inbox; results come out through a callback or a queue.
Finals are never superseded; a newer partial replaces an older one that has not started yet,
because a partial of a growing segment is stale as soon as a longer one exists.

Speculation: at a pause onset the pipeline submits a *speculative* request, the segment as it
will be if the silence becomes a pause. Its result is not delivered; it is kept. If the final
request that follows carries exactly the same audio, the kept result (or the transcription
still running) becomes the final, so the final costs no second Whisper pass and arrives up to
`pause_ms` sooner. Any other outcome (speech resumed: `withdraw`, a newer speculation, a final
with other audio) discards it, and the final is transcribed as usual: a final's words are always
Whisper's words for the final's own audio. While a kept speculation waits for its final,
`on_speculation` gets its words, so the consumer can prepare what the final will need (the
pipeline embeds them: the final's embedding is then a cache hit).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from realtime.extractors.asr import AsrRequest, AsrResult, SpeechRecognizer
from realtime.queues import DropOldestQueue
from realtime.types import Word

log = logging.getLogger(__name__)


@dataclass
class AsrStats:
    finals: int = 0  # final results delivered (transcribed, or taken over from a speculation)
    partials: int = 0
    partials_superseded: int = 0  # replaced by a newer partial before they ran
    finals_dropped: int = 0  # only when the inbox of finals overflowed
    errors: int = 0
    speculations: int = 0  # speculative transcriptions started
    speculations_used: int = 0  # finals delivered from a speculation, without a second pass
    speculations_discarded: int = 0  # started, then not used (speech resumed, other audio)


@dataclass
class _Speculation:
    """A speculative request's fate; its fields change only under the inbox lock."""

    running: bool = False
    words: tuple[Word, ...] | None = None  # its transcription, once done and still usable
    promoted: _Entry | None = None  # the matching final, submitted while the speculation ran
    discarded: bool = False


@dataclass(frozen=True)
class _Entry:
    request: AsrRequest
    t_submit_s: float  # monotonic
    words: tuple[Word, ...] | None = None  # a final already transcribed by its speculation
    speculation: _Speculation | None = None  # set on speculative requests


class _Inbox:
    """Bounded finals FIFO, one slot for the newest speculation and one for the newest partial;
    `take` prefers finals, then the speculation (it is the next final), then the partial."""

    def __init__(self, max_finals: int, stats: AsrStats) -> None:
        self._finals: collections.deque[_Entry] = collections.deque()
        self.given_up: collections.deque[_Entry] = collections.deque()  # dropped finals to close
        self._partial: _Entry | None = None
        # The current speculation (queued, running or done), not yet matched with its final.
        self._speculative: _Entry | None = None
        self._max_finals = max_finals
        self._closed_ids: set[int] = set()  # segments whose final was submitted
        self._cond = threading.Condition()
        self._stats = stats

    def put(self, request: AsrRequest) -> None:
        now = time.monotonic()
        if request.speculative:
            self._put_speculative(_Entry(request, now, speculation=_Speculation()))
            return
        entry = _Entry(request, now)
        with self._cond:
            if request.final:
                self._closed_ids.add(request.segment_id)
                queued = self._match_speculation(entry)  # None: the running guess delivers it
                if queued is not None and len(self._finals) >= self._max_finals:
                    self.given_up.append(self._finals.popleft())
                    self._stats.finals_dropped += 1
                    log.warning("asr: inbox full, dropped the oldest final segment")
                if queued is not None:
                    self._finals.append(queued)
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

    def _put_speculative(self, entry: _Entry) -> None:
        with self._cond:
            if entry.request.segment_id in self._closed_ids:
                return  # its final is in already
            self._discard_speculation()  # a newer pause onset: the older guess is stale
            self._speculative = entry
            self._cond.notify()

    def _match_speculation(self, final: _Entry) -> _Entry | None:
        """Under the lock: the final to queue (maybe with its words already), or None when the
        running speculation becomes this final. A speculation of other audio is discarded."""
        current = self._speculative
        if current is None or current.request.segment_id != final.request.segment_id:
            return final
        spec = current.speculation
        assert spec is not None
        if not current.request.same_audio(final.request):
            self._discard_speculation()
            return final
        self._speculative = None
        if spec.words is not None:  # done: the final needs no transcription
            return replace(final, words=spec.words)
        if spec.running:
            spec.promoted = final
            return None
        return final  # not started yet: transcribe it as the final, once

    def _discard_speculation(self) -> None:
        """Under the lock: forget the current speculation (its result, if any, is thrown away)."""
        current, self._speculative = self._speculative, None
        if current is None:
            return
        spec = current.speculation
        assert spec is not None
        if spec.running or spec.words is not None:
            self._stats.speculations_discarded += 1
        spec.discarded, spec.words = True, None

    def withdraw(self, segment_id: int) -> None:
        """Speech resumed in `segment_id`: its speculation is stale."""
        with self._cond:
            if self._speculative is not None and (
                self._speculative.request.segment_id == segment_id
            ):
                self._discard_speculation()

    def speculation_done(self, entry: _Entry, words: tuple[Word, ...] | None) -> _Entry | None:
        """The worker finished (words) or failed (None) a speculative entry. Returns the final
        it became, to deliver with these words (failed: None, and the final is queued to be
        transcribed on its own); otherwise keeps the words for a final to come, or drops them."""
        spec = entry.speculation
        assert spec is not None
        with self._cond:
            spec.running = False
            if spec.promoted is not None:
                if words is None:
                    self._finals.appendleft(spec.promoted)
                    self._cond.notify()
                    return None
                return spec.promoted
            if spec.discarded or self._speculative is not entry or words is None:
                if self._speculative is entry:
                    self._speculative = None
                return None
            spec.words = words
            return None

    def _speculation_queued(self) -> bool:
        spec = self._speculative.speculation if self._speculative is not None else None
        return spec is not None and not spec.running and spec.words is None

    def take(self, timeout_s: float) -> _Entry | None:
        with self._cond:
            ready = self._cond.wait_for(
                lambda: (
                    bool(self._finals) or self._speculation_queued() or self._partial is not None
                    or bool(self.given_up)
                ),
                timeout_s,
            )
            if not ready:
                return None
            if self._finals:
                return self._finals.popleft()
            if self._speculation_queued():
                entry = self._speculative
                assert entry is not None and entry.speculation is not None
                entry.speculation.running = True
                self._stats.speculations += 1
                return entry
            entry, self._partial = self._partial, None
            return entry

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()


class AsrWorker:
    """One thread that transcribes submitted segments; stop() joins it with a timeout.

    Results go to `on_result` (called on the worker thread: keep it short and thread-safe) or,
    without a callback, into `self.results`, a bounded drop-oldest queue the consumer polls.
    `on_speculation` (worker thread too) gets the words of a speculation kept for its final.
    """

    def __init__(
        self,
        recognizer: SpeechRecognizer,
        on_result: Callable[[AsrResult], None] | None = None,
        max_pending_finals: int = 8,
        poll_s: float = 0.5,
        on_speculation: Callable[[tuple[Word, ...]], None] | None = None,
    ) -> None:
        self._recognizer = recognizer
        self._on_result = on_result
        self._on_speculation = on_speculation
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

    def withdraw(self, segment_id: int) -> None:
        """Speech resumed in `segment_id` after a pause onset: drop its speculation (a running
        one finishes, and its words are thrown away). Never blocks."""
        self._inbox.withdraw(segment_id)

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
            while self._inbox.given_up:  # only this thread takes from it
                self._deliver(self._inbox.given_up.popleft(), (), 0.0, 0.0, dropped=True)
            entry = self._inbox.take(self._poll_s)
            if entry is None or self._stop.is_set():
                continue
            if entry.words is not None:  # a final its speculation already transcribed
                self.stats.speculations_used += 1
                self._deliver(entry, entry.words, compute_s=0.0,
                              queued_s=time.monotonic() - entry.t_submit_s)  # fmt: skip
                continue
            request = entry.request
            t0 = time.monotonic()
            try:
                words = tuple(self._recognizer.transcribe(request.samples, request.t_start_s))
            except Exception:  # one bad segment must not end transcription for the session
                self.stats.errors += 1
                log.exception("asr: transcription of segment %d failed", request.segment_id)
                if entry.speculation is not None:
                    self._inbox.speculation_done(entry, None)  # a waiting final runs on its own
                elif request.final:
                    self._deliver(entry, (), 0.0, 0.0, dropped=True)
                continue
            t1 = time.monotonic()
            if entry.speculation is None:
                self._deliver(entry, words, compute_s=t1 - t0, queued_s=t0 - entry.t_submit_s)
                continue
            final = self._inbox.speculation_done(entry, words)
            if final is not None:  # the pause was confirmed while this ran
                self.stats.speculations_used += 1
                # Of the Whisper pass, only what ran after the final came in was waited for.
                self._deliver(final, words, compute_s=t1 - max(t0, final.t_submit_s),
                              queued_s=0.0)  # fmt: skip
            elif self._on_speculation is not None and entry.speculation.words is not None:
                try:  # kept for a final to come: prepare for it while the pause is confirmed
                    self._on_speculation(words)
                except Exception:
                    log.exception("asr: speculation callback failed")

    def _deliver(
        self, entry: _Entry, words: tuple[Word, ...], compute_s: float, queued_s: float,
        dropped: bool = False,
    ) -> None:  # fmt: skip
        request = entry.request
        if dropped:
            pass  # counted where it was given up (finals_dropped, errors)
        elif request.final:
            self.stats.finals += 1
        else:
            self.stats.partials += 1
        result = AsrResult(
            request.segment_id,
            request.t_start_s,
            request.t_end_s,
            request.final,
            words,
            compute_s=compute_s,
            queued_s=queued_s,
            dropped=dropped,
        )
        if self._on_result is None:
            self.results.put(result)
            return
        try:
            self._on_result(result)
        except Exception:
            log.exception("asr: result callback failed")
