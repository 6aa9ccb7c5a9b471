"""Utterance bookkeeping between the voice activity segmenter, speech recognition and the model.
Pure: no threads, no clock of its own.

A segment opens at speech onset and closes after a pause (`--pause-ms`). Its final transcript
comes later from ASR. The utterance result is due once (a) the final words are in and (b) every
step up to the segment's end has been emitted and is final. Until a segment's final words are in,
text before its start is settled but text after it is not: `text_final_until` says how far text
is settled, which is what makes steps final.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from realtime.types import Word


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
class UtteranceTracker:
    _open: dict[int, PendingUtterance] = field(default_factory=dict)
    _vad_until_s: float = 0.0
    _next_id: int = 0

    def opened(self, segment_id: int, t_start_s: float) -> None:
        self._open[segment_id] = PendingUtterance(segment_id, t_start_s)

    def closed(
        self, segment_id: int, t_start_s: float, t_end_s: float, monotonic_s: float, forced: bool
    ) -> None:
        u = self._open.setdefault(segment_id, PendingUtterance(segment_id, t_start_s))
        u.t_start_s, u.t_end_s, u.closed_monotonic_s, u.forced = (
            t_start_s,
            t_end_s,
            monotonic_s,
            forced,
        )

    def transcribed(self, segment_id: int, words: tuple[Word, ...]) -> None:
        u = self._open.get(segment_id)
        if u is not None and u.t_end_s is not None:
            u.words = words

    def vad_until(self, t_s: float) -> None:
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

    def close_all(self) -> None:
        """End of stream: nothing more will be heard."""
        self._vad_until_s = math.inf

    @property
    def pending(self) -> int:
        return len(self._open)

    @property
    def awaiting_asr(self) -> int:
        return sum(1 for u in self._open.values() if u.t_end_s is not None and u.words is None)
