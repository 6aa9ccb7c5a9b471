"""Speech recognition hears a lead of audio before each segment (soft onsets fall before the VAD's
padded start), never the previous segment's audio; words heard in the lead belong to the segment
(docs/eval/asr-lead-rule.md). Real VAD, openSMILE and Whisper."""

from __future__ import annotations

import numpy as np
import pytest

from lab.dataset_builder import BuildOptions
from realtime.audio_frontend import AudioFrontEnd, recognition_lead_s
from realtime.extractors.asr import AsrRequest, SpeechRecognizer, words_from
from realtime.extractors.asr_worker import AsrWorker
from realtime.extractors.vad import SegmentEnd
from realtime.replay import audio_blocks, extract
from realtime.tts import silence, synthesize_speech
from realtime.types import SAMPLE_RATE_HZ, Word

ONE_SAMPLE_S = 1.0 / SAMPLE_RATE_HZ


def _segments(front: AudioFrontEnd, signal: np.ndarray) -> list[tuple[SegmentEnd, float]]:
    """Each closed segment, with where recognition_cut starts its audio when it closes."""
    out = []
    for block in audio_blocks(signal):
        for event in front.push(block).events:
            if isinstance(event, SegmentEnd):
                t0, _ = front.recognition_cut(event.t_start_s, event.t_end_s)
                out.append((event, t0))
    for event in front.flush().events:
        if isinstance(event, SegmentEnd):
            out.append((event, front.recognition_cut(event.t_start_s, event.t_end_s)[0]))
    return out


def test_the_lead_is_one_pause() -> None:
    assert recognition_lead_s(600.0) == pytest.approx(0.6)
    assert recognition_lead_s(250.0) == pytest.approx(0.25)


def test_recognition_starts_one_lead_early_but_never_before_the_stream() -> None:
    signal = np.concatenate([silence(0.3), synthesize_speech("bad news today"), silence(1.2),
                             synthesize_speech("the train leaves from platform four"),
                             silence(1.0)])  # fmt: skip
    with AudioFrontEnd(600.0, voice_chunk_s=1.0) as front:
        (first, t0_first), (second, t0_second) = _segments(front, signal)
        # The first segment starts less than a lead into the stream: its audio starts the stream.
        assert 0.0 < first.t_start_s < 0.6 and t0_first == 0.0
        # The second hears the full lead, all of it after the first segment's end.
        assert t0_second == pytest.approx(second.t_start_s - 0.6, abs=ONE_SAMPLE_S)
        assert t0_second > first.t_end_s
        # The plain cut (the segment itself) is unchanged.
        assert front.cut(second.t_start_s, second.t_end_s)[0] == pytest.approx(
            second.t_start_s, abs=ONE_SAMPLE_S
        )


def test_a_segment_closed_mid_speech_lends_no_audio_to_the_next() -> None:
    """Speech longer than max_segment_s is closed and reopened at once: the next segment's lead
    would re-hear the last words of the one before, so it has none."""
    text = " ".join(["the weather was lovely and we walked along the river for a long while"
                     " talking about nothing at all"] * 6)  # fmt: skip
    signal = np.concatenate([silence(0.3), synthesize_speech(text), silence(1.0)])
    with AudioFrontEnd(600.0, voice_chunk_s=1.0) as front:
        segments = _segments(front, signal)
    assert len(segments) == 2 and segments[0][0].forced
    (first, _), (second, t0_second) = segments
    assert second.t_start_s == pytest.approx(first.t_end_s)
    assert t0_second == pytest.approx(second.t_start_s, abs=ONE_SAMPLE_S)


def test_words_heard_in_the_lead_are_moved_to_the_segment_start() -> None:
    heard = [Word("its", 1.9, 2.1, 0.8), Word("bad", 2.0, 2.6, 0.9), Word("day", 2.7, 3.0, 0.9)]
    moved = words_from(heard, 2.2)
    assert [(w.text, w.t_start_s, w.t_end_s) for w in moved] == [
        ("its", 2.2, 2.2), ("bad", 2.2, 2.6), ("day", 2.7, 3.0)
    ]
    assert words_from(heard, 1.0) == heard


def test_a_request_cannot_speak_for_a_span_before_its_audio() -> None:
    audio = np.zeros(1600, np.float32)
    assert AsrRequest(0, 5.0, audio, final=True, words_from_s=5.6).span_start_s == 5.6
    assert AsrRequest(0, 5.0, audio, final=True).span_start_s == 5.0
    with pytest.raises(ValueError, match="words_from_s"):
        AsrRequest(0, 5.0, audio, final=True, words_from_s=4.9)
    # A request with a lead is not the same audio as one without, even over the same samples.
    assert not AsrRequest(0, 5.0, audio, final=True, words_from_s=5.6).same_audio(
        AsrRequest(0, 5.0, audio, final=True)
    )


def test_the_worker_reports_the_segment_not_its_lead() -> None:
    """Real Whisper on a sentence whose first words fall before the request's segment start: the
    result spans the segment, and every word (none dropped) starts inside it."""
    lead_s, t0 = 0.4, 30.0
    speech = np.concatenate([silence(lead_s), synthesize_speech("I feel happy and calm today"),
                             silence(0.4)])  # fmt: skip
    recognizer = SpeechRecognizer()
    plain = recognizer.transcribe(speech, t0)
    segment_start = plain[1].t_start_s  # the segment starts at the second word
    worker = AsrWorker(recognizer, poll_s=0.2)
    worker.start()
    try:
        worker.submit(AsrRequest(3, t0, speech, final=True, words_from_s=segment_start))
        result = worker.results.get(timeout_s=60.0)
    finally:
        worker.stop()
    assert result is not None and result.t_start_s == segment_start and result.t_end_s == pytest.approx(
        t0 + len(speech) / SAMPLE_RATE_HZ
    )
    assert [w.text for w in result.words] == [w.text for w in plain]
    assert min(w.t_start_s for w in result.words) == segment_start
    assert plain[0].t_start_s < segment_start  # so a word was moved


class _FirstWordAtItsAudio:
    """Stands in for Whisper: one word at the first sample it is given, one per second after."""

    def __init__(self) -> None:
        self.starts: list[float] = []

    def transcribe(self, samples: np.ndarray, t_start_s: float) -> list[Word]:
        self.starts.append(t_start_s)
        n = max(1, int(len(samples) / SAMPLE_RATE_HZ))
        return [Word(f"w{i}", t_start_s + i, t_start_s + i + 0.2, 0.9) for i in range(n)]


class _NoWords:
    dim = 8
    adapter_digest = None

    def embed_words(self, words: list[Word]) -> list:
        from realtime.types import EmbeddedWord

        return [EmbeddedWord(w, np.zeros(self.dim, np.float32)) for w in words]


def test_replay_hears_the_lead_and_keeps_words_in_their_segment() -> None:
    """Replay (what datasets are built from) cuts the same audio as the live requests and moves
    words heard in the lead to the segment's start."""
    from realtime.extractors import Extractors

    signal = np.concatenate([silence(1.0), synthesize_speech("bad news today"), silence(1.2),
                             synthesize_speech("no it is not"), silence(0.8)])  # fmt: skip
    heard = _FirstWordAtItsAudio()
    result = extract(audio_blocks(signal), Extractors(None, heard, _NoWords()),  # type: ignore[arg-type]
                     has_video=False, has_audio=True)  # fmt: skip
    assert len(result.segments) == 2 and len(heard.starts) == 2
    for (start, end), t0 in zip(result.segments, heard.starts, strict=True):
        assert t0 == pytest.approx(start - 0.6, abs=ONE_SAMPLE_S)
    for start, end in result.segments:
        inside = [w for w in result.words if start <= w.t_start_s < end]
        assert inside and inside[0].t_start_s == start  # the lead's word, moved to the start
    assert all(any(s <= w.t_start_s < e for s, e in result.segments) for w in result.words)


def test_the_lead_keys_recognised_features_only(monkeypatch) -> None:
    asr, words = BuildOptions().key(), BuildOptions(transcripts=True).key()
    monkeypatch.setattr("realtime.audio_frontend.recognition_lead_s", lambda pause_ms: 0.0)
    assert BuildOptions().key() != asr
    assert BuildOptions(transcripts=True).key() == words
