"""Silero VAD on generated speech, and the pure segmenter on synthetic probabilities."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from realtime.extractors.vad import (
    CHUNK_S,
    SegmentEnd,
    SegmenterOptions,
    SegmentStart,
    SileroVad,
    SpeechSegmenter,
    silero_onnx_path,
)
from realtime.tts import silence, synthesize_speech
from realtime.types import SAMPLE_RATE_HZ, AudioBlock, SpeechProbability

T0_S = 3.0


def speech_extent_s(samples: np.ndarray) -> tuple[float, float]:
    """First and last 10 ms frame with audible energy: the ground truth of where speech is."""
    frames = samples[: len(samples) // 160 * 160].reshape(-1, 160)
    loud = np.where(np.sqrt((frames**2).mean(axis=1)) > 0.01)[0]
    return loud[0] * 0.01, (loud[-1] + 1) * 0.01


@pytest.fixture(scope="module")
def utterances() -> tuple[np.ndarray, np.ndarray]:
    return (
        synthesize_speech("The weather is lovely today and I feel great."),
        synthesize_speech("Tomorrow it will probably rain again."),
    )


@pytest.fixture(scope="module")
def vad() -> SileroVad:
    return SileroVad()


def run_vad(vad: SileroVad, samples: np.ndarray, block: int = 1600) -> list[SpeechProbability]:
    vad.reset()
    probs = []
    for i, pos in enumerate(range(0, len(samples), block)):
        t_s = T0_S + pos / SAMPLE_RATE_HZ
        probs += vad.push(AudioBlock(i, t_s, samples[pos : pos + block]))
    return probs


def test_model_located_without_importing_torch_code() -> None:
    assert silero_onnx_path().name == "silero_vad.onnx"
    assert "silero_vad" not in sys.modules


def test_chunks_are_contiguous_and_block_size_free(vad: SileroVad, utterances) -> None:
    speech = utterances[0]
    a = run_vad(vad, speech, block=1600)
    b = run_vad(vad, speech, block=333)
    assert len(a) == len(speech) // 512 == len(b)
    assert a[0].t_start_s == T0_S
    assert all(abs(q.t_start_s - p.t_end_s) < 1e-9 for p, q in zip(a, a[1:]))
    np.testing.assert_allclose([p.probability for p in a], [p.probability for p in b], atol=1e-6)
    assert max(p.probability for p in a) > 0.9
    assert max(p.probability for p in run_vad(vad, silence(1.0))) < 0.2


def test_speech_silence_speech_pause_within_100ms(vad: SileroVad, utterances) -> None:
    first, second = utterances
    gap = silence(1.2)
    audio = np.concatenate([silence(0.5), first, gap, second, silence(1.0)])
    s1, e1 = speech_extent_s(np.concatenate([silence(0.5), first]))
    offset_s = (16000 * 0.5 + len(first) + len(gap)) / SAMPLE_RATE_HZ
    s2, e2 = (offset_s + t for t in speech_extent_s(second))

    segmenter = SpeechSegmenter(SegmenterOptions(padding_ms=0))
    events = [e for p in run_vad(vad, audio) for e in segmenter.push(p)] + segmenter.flush()
    ends = [e for e in events if isinstance(e, SegmentEnd)]
    assert [type(e) for e in events] == [SegmentStart, SegmentEnd, SegmentStart, SegmentEnd]
    assert not any(e.forced for e in ends)  # both closed by the pause, not by flush
    truth = [(s1, e1), (s2, e2)]
    for end, (t_start_s, t_end_s) in zip(ends, truth):
        assert abs(end.t_start_s - T0_S - t_start_s) <= 0.1
        assert abs(end.t_end_s - T0_S - t_end_s) <= 0.1
        # The close is known once the pause has lasted pause_ms.
        assert end.t_detected_s - end.t_end_s == pytest.approx(0.6, abs=2 * CHUNK_S)


def probs(values: list[float], chunk_s: float = 0.1) -> list[SpeechProbability]:
    return [SpeechProbability(i * chunk_s, (i + 1) * chunk_s, v) for i, v in enumerate(values)]


def push_all(seg: SpeechSegmenter, ps: list[SpeechProbability]) -> list:
    return [e for p in ps for e in seg.push(p)] + seg.flush()


def test_segmenter_short_pause_does_not_split() -> None:
    seg = SpeechSegmenter(SegmenterOptions(pause_ms=600, min_speech_ms=200, padding_ms=0))
    events = push_all(seg, probs([0.0] * 3 + [0.9] * 5 + [0.1] * 4 + [0.9] * 5 + [0.0] * 8))
    assert [type(e) for e in events] == [SegmentStart, SegmentEnd]
    assert events[0].t_start_s == pytest.approx(0.3)
    assert events[0].t_detected_s == pytest.approx(0.5)  # after min_speech_ms
    assert events[1].t_end_s == pytest.approx(1.7) and not events[1].forced
    assert events[1].t_detected_s == pytest.approx(2.3)


def test_segmenter_hysteresis_and_clicks() -> None:
    seg = SpeechSegmenter(SegmenterOptions(pause_ms=300, min_speech_ms=300, padding_ms=0))
    # a 100 ms click opens nothing; 0.4 sits between the thresholds and keeps speech going
    events = push_all(seg, probs([0.9, 0.0, 0.0] + [0.9, 0.4, 0.4, 0.4, 0.4, 0.9] + [0.0] * 4))
    assert [type(e) for e in events] == [SegmentStart, SegmentEnd]
    assert events[1].t_start_s == pytest.approx(0.3) and events[1].t_end_s == pytest.approx(0.9)


def test_segmenter_padding_is_bounded() -> None:
    seg = SpeechSegmenter(SegmenterOptions(pause_ms=200, min_speech_ms=100, padding_ms=150))
    events = push_all(seg, probs([0.9] * 3 + [0.0] * 3 + [0.9] * 3 + [0.0] * 3))
    starts = [e.t_start_s for e in events if isinstance(e, SegmentStart)]
    ends = [e for e in events if isinstance(e, SegmentEnd)]
    assert starts[0] == pytest.approx(-0.15)  # padding may precede the first chunk
    assert ends[0].t_end_s == pytest.approx(0.45)
    assert starts[1] == pytest.approx(0.45)  # not before the previous segment's end
    assert [e.segment_id for e in ends] == [0, 1]


def test_segmenter_max_length_and_flush() -> None:
    seg = SpeechSegmenter(SegmenterOptions(min_speech_ms=100, padding_ms=0, max_segment_s=1.0))
    events = push_all(seg, probs([0.9] * 25))
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["SegmentStart", "SegmentEnd"] * 3
    assert all(e.forced for e in events if isinstance(e, SegmentEnd))
    assert events[-1].t_end_s == pytest.approx(2.5)


def test_segmenter_options_validated() -> None:
    with pytest.raises(ValueError):
        SegmenterOptions(threshold=0.5, neg_threshold=0.7)
    with pytest.raises(ValueError):
        SegmenterOptions(pause_ms=-1)


def test_pause_onset_gives_the_end_a_confirmed_pause_will_have() -> None:
    """Speculative ASR starts at the onset: it must name exactly the close's end, and vanish when
    speech resumes before the pause is confirmed."""
    seg = SpeechSegmenter(SegmenterOptions(pause_ms=600, min_speech_ms=200, padding_ms=100))
    ps = probs([0.0] * 2 + [0.9] * 5 + [0.1] * 3 + [0.9] * 4 + [0.0] * 13, chunk_s=0.05)
    onsets, events = [], []
    for p in ps:
        events += seg.push(p)
        onsets.append(seg.pause_onset)
    assert onsets[:7] == [None] * 7  # silence, then speech
    assert onsets[7] is None  # 50 ms of silence: less than the padding, the end is not heard yet
    first = onsets[8]
    assert first is not None and first.segment_id == 0
    assert first.t_start_s == pytest.approx(0.0) and first.t_end_s == pytest.approx(0.45)
    assert onsets[9] == first  # the same onset while the silence lasts
    assert onsets[10] is None  # speech resumed: the guess is stale
    second = onsets[15]
    assert second is not None and second.t_end_s == pytest.approx(0.8)
    (end,) = [e for e in events if isinstance(e, SegmentEnd)]
    assert end.t_end_s == second.t_end_s and not end.forced  # exactly, not approximately
    assert seg.pause_onset is None  # closed


def test_no_segment_starts_before_the_decided_horizon() -> None:
    """The core settles text up to `decided_until_s`; a segment opened later with a backdated
    start before it would have its first steps finalised before their words arrived."""
    rng = np.random.default_rng(3)
    values: list[float] = []  # alternating runs: clicks, short and long speech, pauses
    for i in range(40):
        values += [0.9 if i % 2 else 0.05] * int(rng.integers(1, 25))
    seg = SpeechSegmenter(SegmenterOptions(pause_ms=300, min_speech_ms=250, padding_ms=100))
    horizon, opened = 0.0, 0
    for p in probs(values, chunk_s=0.032):
        for event in seg.push(p):
            if isinstance(event, SegmentStart):
                opened += 1
                assert event.t_start_s >= horizon - 1e-9, (event.t_start_s, horizon)
        now = seg.decided_until_s
        assert now >= horizon - 1e-9  # it never moves back
        horizon = now
    assert opened >= 3
    assert horizon <= len(values) * 0.032
