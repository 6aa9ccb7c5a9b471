"""Utterance bookkeeping: when text is settled, when an utterance result is due."""

from realtime.types import Word
from realtime.utterances import UtteranceTracker


def test_text_is_settled_up_to_the_earliest_untranscribed_segment():
    t = UtteranceTracker()
    t.vad_until(1.0)
    assert t.text_final_until() == 1.0  # silence so far: everything up to VAD is settled
    t.opened(0, 1.2)
    t.vad_until(3.0)
    assert t.text_final_until() == 1.2  # speech from 1.2 s may still get words
    t.closed(0, 1.2, 2.5, monotonic_s=10.0, forced=False)
    assert t.text_final_until() == 1.2 and t.awaiting_asr == 1
    t.transcribed(0, (Word("hello", 1.3, 1.8, 0.9),))
    assert t.text_final_until() == 3.0


def test_result_is_due_only_when_words_and_steps_are_in():
    t = UtteranceTracker()
    t.opened(0, 0.5)
    t.closed(0, 0.5, 2.0, monotonic_s=1.0, forced=False)
    t.vad_until(2.6)
    assert t.pop_due(steps_emitted_until_s=3.0) == []  # no words yet
    t.transcribed(0, (Word("fine", 0.6, 1.0, 0.9), Word("thanks", 1.0, 1.5, 0.9)))
    assert t.pop_due(steps_emitted_until_s=1.9) == []  # its last steps are not out yet
    (due,) = t.pop_due(steps_emitted_until_s=2.0)
    assert due.transcript == "fine thanks" and t.pending == 0


def test_giving_up_on_recognition_closes_with_an_empty_transcript():
    t = UtteranceTracker()
    t.opened(0, 0.0)
    t.closed(0, 0.0, 1.0, monotonic_s=0.0, forced=True)
    t.opened(1, 1.5)  # still open: not waiting for a final transcript yet
    assert t.give_up_on_asr() == 1
    t.close_all()
    (due,) = t.pop_due(steps_emitted_until_s=5.0)
    assert due.segment_id == 0 and due.transcript == ""
