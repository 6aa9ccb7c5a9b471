"""Utterance bookkeeping: when text is settled, when an utterance result is due."""

import pytest

from realtime.extractors.asr import AsrResult
from realtime.extractors.vad import SegmentEnd, SegmentStart
from realtime.stream_events import (
    SegmentClosed,
    SegmentOpened,
    SpeechScored,
    StreamEnded,
    WordsRecognised,
)
from realtime.types import Word
from realtime.utterances import UtteranceTracker


def decided(t_s: float) -> SpeechScored:
    """Voice activity decided up to t_s (no probabilities needed by the tracker)."""
    return SpeechScored((), decided_until_s=t_s)


def opened(segment_id: int, t_start_s: float) -> SegmentOpened:
    return SegmentOpened(SegmentStart(segment_id, t_start_s, t_start_s))


def closed(segment_id: int, t_start_s: float, t_end_s: float, forced=False) -> SegmentClosed:
    return SegmentClosed(SegmentEnd(segment_id, t_start_s, t_end_s, t_end_s, forced), 10.0)


def words(segment_id: int, *said: Word, final=True) -> WordsRecognised:
    return WordsRecognised(AsrResult(segment_id, 0.0, 9.0, final, said, 0.0, 0.0), ())


def test_text_is_settled_up_to_the_earliest_untranscribed_segment():
    t = UtteranceTracker()
    t.push(decided(1.0))
    assert t.text_final_until() == 1.0  # silence so far: everything up to VAD is settled
    t.push(opened(0, 1.2))
    t.push(decided(3.0))
    assert t.text_final_until() == 1.2  # speech from 1.2 s may still get words
    t.push(closed(0, 1.2, 2.5))
    assert t.text_final_until() == 1.2 and t.awaiting_asr == 1
    t.push(words(0, Word("hello", 1.3, 1.8, 0.9), final=False))  # a partial settles nothing
    assert t.awaiting_asr == 1
    t.push(words(0, Word("hello", 1.3, 1.8, 0.9)))
    assert t.text_final_until() == 3.0


def test_result_is_due_only_when_words_and_steps_are_in():
    t = UtteranceTracker()
    t.push(opened(0, 0.5))
    t.push(closed(0, 0.5, 2.0))
    t.push(decided(2.6))
    assert t.pop_due(steps_emitted_until_s=3.0) == []  # no words yet
    t.push(words(0, Word("fine", 0.6, 1.0, 0.9), Word("thanks", 1.0, 1.5, 0.9)))
    assert t.pop_due(steps_emitted_until_s=1.9) == []  # its last steps are not out yet
    (due,) = t.pop_due(steps_emitted_until_s=2.0)
    assert due.transcript == "fine thanks" and t.pending == 0
    assert due.closed_monotonic_s == 10.0


def test_giving_up_on_recognition_closes_with_an_empty_transcript():
    t = UtteranceTracker()
    t.push(opened(0, 0.0))
    t.push(closed(0, 0.0, 1.0, forced=True))
    t.push(opened(1, 1.5))  # still open: not waiting for a final transcript yet
    assert t.give_up_on_asr() == 1
    t.flush()
    (due,) = t.pop_due(steps_emitted_until_s=5.0)
    assert due.segment_id == 0 and due.transcript == "" and due.forced


def test_the_audio_end_settles_text_and_reset_forgets_the_stream():
    t = UtteranceTracker()
    t.push(StreamEnded("video"))  # the camera's end says nothing about speech
    assert t.text_final_until() == 0.0
    t.push(StreamEnded("audio", 4.0))
    assert t.text_final_until() == 4.0
    t.push(opened(0, 4.5))
    t.reset()
    assert t.pending == 0 and t.text_final_until() == 0.0
    with pytest.raises(TypeError, match="no handler for float"):
        t.push(1.0)  # type: ignore[arg-type]
