"""Utterance bookkeeping between the voice activity segmenter, speech recognition and the model.
Pure: no threads, no clock of its own.

A segment opens at speech onset and closes after a pause (`--pause-ms`). Its final transcript
comes later from ASR. The utterance result is due once (a) the final words are in and (b) every
step up to the segment's end has been emitted and is final. Until a segment's final words are in,
text before its start is settled but text after it is not: `text_final_until` says how far text
is settled, which is what makes steps final.

A stage (realtime/stage.py): push(event) files segment openings and closings, final words and
how far voice activity is decided, and gives nothing (a result is due only once its steps are
final, which the caller knows: `pop_due`); flush() at the end of the stream (nothing more will be
heard); reset.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from realtime.stage import Stage
from realtime.stream_events import (
    SegmentClosed,
    SegmentOpened,
    SpeechScored,
    StreamEnded,
    WordsRecognised,
)
from realtime.types import Word

TrackerEvent = SegmentOpened | SegmentClosed | WordsRecognised | SpeechScored | StreamEnded


@dataclass
class PendingUtterance:
    segment_id: int
    t_start_s: float
    t_end_s: float | None = None  # None while speech goes on
    closed_monotonic_s: float | None = None  # wall (monotonic) time the pause was detected
    words: tuple[Word, ...] | None = None  # final words, once ASR returned them
    forced: bool = False

    @property
    def transcript(self) -> str:
        return " ".join(w.text.strip() for w in self.words or ()).strip()


@dataclass
class UtteranceTracker(Stage[TrackerEvent]):
    _open: dict[int, PendingUtterance] = field(default_factory=dict)
    _vad_until_s: float = 0.0
    EVENTS = (SegmentOpened, SegmentClosed, WordsRecognised, SpeechScored, StreamEnded)

    def push(self, event: TrackerEvent) -> None:
        if isinstance(event, SegmentOpened):
            self._open[event.segment.segment_id] = PendingUtterance(
                event.segment.segment_id, event.segment.t_start_s
            )
        elif isinstance(event, SegmentClosed):
            self._closed(event)
        elif isinstance(event, WordsRecognised):
            u = self._open.get(event.result.segment_id)
            if event.result.final and u is not None and u.t_end_s is not None:
                u.words = event.result.words
        elif isinstance(event, SpeechScored):
            self._vad_until(event.decided_until_s)
        elif isinstance(event, StreamEnded):
            if event.kind == "audio" and event.t_end_s is not None:
                self._vad_until(event.t_end_s)  # no segment starts after the audio ends
        else:
            raise TypeError(f"the utterance tracker has no handler for {type(event).__name__}")

    def _closed(self, event: SegmentClosed) -> None:
        seg = event.segment
        u = self._open.setdefault(seg.segment_id, PendingUtterance(seg.segment_id, seg.t_start_s))
        u.t_start_s, u.t_end_s, u.forced = seg.t_start_s, seg.t_end_s, seg.forced
        u.closed_monotonic_s = event.closed_monotonic_s

    def _vad_until(self, t_s: float) -> None:
        """Voice activity has been decided up to `t_s` (no segment can start before it any more)."""
        self._vad_until_s = max(self._vad_until_s, t_s)

    def text_final_until(self) -> float:
        """Words can still change only from the start of the earliest untranscribed segment."""
        untranscribed = [u.t_start_s for u in self._open.values() if u.words is None]
        return min(untranscribed, default=self._vad_until_s)

    def pop_due(self, steps_emitted_until_s: float) -> list[PendingUtterance]:
        """Closed, transcribed utterances whose steps are all emitted and final, oldest first."""
        final_until = self.text_final_until()
        due = [
            u for u in self._open.values()
            if u.words is not None and u.t_end_s is not None
            and steps_emitted_until_s + 1e-9 >= u.t_end_s and final_until + 1e-9 >= u.t_end_s
        ]  # fmt: skip
        due.sort(key=lambda u: u.t_start_s)
        for u in due:
            del self._open[u.segment_id]
        return due

    def give_up_on_asr(self) -> int:
        """Speech recognition will not answer (end of stream, timeout): close every utterance
        still waiting for words with an empty transcript. Returns how many there were."""
        waiting = [u for u in self._open.values() if u.t_end_s is not None and u.words is None]
        for u in waiting:
            u.words = ()
        return len(waiting)

    def flush(self) -> None:
        """End of stream: nothing more will be heard, so text is settled wherever no segment
        still waits for its words. Owes nothing itself: results come from pop_due."""
        self._vad_until_s = math.inf

    def reset(self) -> None:
        self._open.clear()
        self._vad_until_s = 0.0

    @property
    def pending(self) -> int:
        return len(self._open)

    @property
    def awaiting_asr(self) -> int:
        return sum(1 for u in self._open.values() if u.t_end_s is not None and u.words is None)
