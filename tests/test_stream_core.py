"""The stream core without threads: events in, messages out, times chosen by the test."""

import numpy as np
import pytest

from contract import messages
from engines import load_engine
from msrg.checkpoint import load_checkpoint
from realtime.device_health import DeliveryWatch
from realtime.extractors.asr import AsrResult
from realtime.extractors.vad import SegmentEnd, SegmentStart
from realtime.pipeline_options import PipelineOptions
from realtime.session import DEFAULT_CHECKPOINT
from realtime.status import SessionStats
from realtime.stream_core import CoreInputs, DeviceCounts, StreamCore
from realtime.stream_events import (
    FaceAnalysed,
    Publish,
    SegmentClosed,
    SegmentOpened,
    SpeechScored,
    StreamEnded,
    VoiceAnalysed,
    WordsRecognised,
)
from realtime.types import EmbeddedWord, FaceObservation, SpeechProbability, VoiceFrames, Word

TEXT_DIM = load_checkpoint(DEFAULT_CHECKPOINT).config.text_dim  # the shipped encoder's width

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def engine():
    return load_engine("eager", DEFAULT_CHECKPOINT)


def make_core(engine, *, live=False, watch=None, counts=None):
    sent: list[messages.Message] = []
    stats = SessionStats()
    inputs = CoreInputs(
        has_video=True, has_audio=True, live=live, stats=stats,
        watch=watch or DeliveryWatch(1.0), emit=sent.append, device_counts=lambda: counts or DeviceCounts(),
    )  # fmt: skip
    core = StreamCore(PipelineOptions(session="test", baseline_s=0.0), engine, inputs)
    return core, sent, stats


def media(core, t0: float, t1: float, speech: float) -> None:
    """Face frames at 10 Hz (no face), voice frames at 100 Hz, one VAD chunk, for [t0, t1)."""
    for k in range(round(t0 * 10), round(t1 * 10)):
        core.handle(FaceAnalysed(FaceObservation(k / 10, False, np.zeros(12, np.float32), None), k / 10))
    n = round((t1 - t0) * 100)
    values = np.full((n, 25), 0.1, np.float32)
    core.handle(VoiceAnalysed(VoiceFrames(t0, 0.01, values), t1))
    core.handle(SpeechScored((SpeechProbability(t0, t1, speech),), decided_until_s=t1))


def words(texts: list[str], t0: float, t1: float) -> tuple[EmbeddedWord, ...]:
    span = (t1 - t0) / len(texts)
    rng = np.random.default_rng(0)
    return tuple(
        EmbeddedWord(Word(w, t0 + i * span, t0 + (i + 1) * span, 0.9),
                     rng.standard_normal(TEXT_DIM).astype(np.float32) * 0.1)
        for i, w in enumerate(texts)
    )  # fmt: skip


def kinds(sent, cls):
    return [m for m in sent if isinstance(m, cls)]


def test_a_sentence_gives_provisional_then_final_steps_and_one_utterance(engine):
    core, sent, stats = make_core(engine)
    media(core, 0.0, 0.5, 0.05)
    core.handle(SegmentOpened(SegmentStart(1, 0.5, 0.7)))
    media(core, 0.5, 1.5, 0.95)
    assert core.tick(stream_s=1.5, mono_s=100.0) is False
    first = kinds(sent, messages.StepMessage)
    # Steps are ready up to the last video frame (t = 1.4); the silent ones before the segment
    # are final at once, the speech steps wait for words.
    assert [m.seq for m in first] == list(range(len(first))) and len(first) >= 13
    assert all(m.revision == 0 for m in first)
    assert {m.seq for m in first if not m.final} == set(range(5, len(first)))
    assert len(kinds(sent, messages.StatusMessage)) == 1  # the first tick always sends one

    media(core, 1.5, 2.0, 0.05)
    core.handle(SegmentClosed(SegmentEnd(1, 0.5, 1.5, 1.9), closed_monotonic_s=100.2))
    said = words(["what", "a", "lovely", "day"], 0.6, 1.4)
    core.handle(WordsRecognised(AsrResult(1, 0.5, 1.5, True, tuple(w.word for w in said), 0.1, 0.0), said))
    core.handle(StreamEnded("video"))
    core.handle(StreamEnded("audio", 2.0))
    assert core.tick(stream_s=2.0, mono_s=100.45) is True

    steps = kinds(sent, messages.StepMessage)
    finals = [m for m in steps if m.final]
    assert sorted(m.seq for m in finals) == list(range(20))  # every step final exactly once
    revised = [m for m in steps if m.revision > 0]
    assert {m.seq for m in revised} >= set(range(6, 13))  # words arrived: speech steps re-ran
    # The words span 0.6-1.4 s; they are held through the 0.6 s that follow (text_hold), so
    # steps up to the stream's end at 2.0 s have text and none before the first word.
    assert all(m.present.text for m in finals if 6 <= m.seq < 20)
    assert not any(m.present.text for m in finals if m.seq < 6)
    (utt,) = kinds(sent, messages.UtteranceMessage)
    assert utt.transcript == "what a lovely day"
    assert (utt.t_start, utt.t_end) == (0.5, 1.5)
    assert utt.latency_ms == pytest.approx(250.0)  # closed at 100.2, published at 100.45
    assert stats.steps_published == len(steps) and stats.utterances_published == 1
    statuses = kinds(sent, messages.StatusMessage)
    assert statuses[-1].sources.camera == "ended" and statuses[-1].sources.microphone == "ended"
    assert core.tick(stream_s=2.0, mono_s=101.0) is True  # done stays done, sends nothing more
    assert len(sent) == len(steps) + 1 + len(statuses)


def test_a_silent_live_camera_is_reported_lost_once_with_its_reason(engine):
    watch = DeliveryWatch(1.0, opened_at=0.0)
    watch.delivered("video", now=0.0)
    watch.delivered("audio", now=0.0)
    core, sent, stats = make_core(engine, live=True, watch=watch,
                                  counts=DeviceCounts(dropped_frames=3))  # fmt: skip
    core.tick(stream_s=0.5, mono_s=0.5)
    watch.delivered("audio", now=1.9)
    core.tick(stream_s=2.0, mono_s=2.0)  # the camera's last frame is 2 s old
    core.tick(stream_s=2.1, mono_s=2.1)
    statuses = kinds(sent, messages.StatusMessage)
    assert [s.sources.camera for s in statuses] == ["ok", "lost"]  # the change is sent at once
    assert statuses[-1].sources.microphone == "ok"
    assert statuses[-1].dropped_frames == 3
    assert stats.errors == 1 and stats.last_error.startswith("camera lost: nothing for 1.0 s")


def test_a_stalled_camera_stops_holding_live_steps_back(engine):
    core, sent, _ = make_core(engine, live=True)
    core.handle(VoiceAnalysed(VoiceFrames(0.0, 0.01, np.zeros((100, 25), np.float32)), 1.0))
    core.handle(SpeechScored((SpeechProbability(0.0, 1.0, 0.0),), decided_until_s=1.0))
    core.tick(stream_s=0.55, mono_s=0.55)
    assert kinds(sent, messages.StepMessage) == []  # no video yet: steps wait
    core.tick(stream_s=1.0, mono_s=1.0)  # steps ending over late_after_s = 0.5 s ago go on
    assert [m.seq for m in kinds(sent, messages.StepMessage)] == [0, 1, 2, 3]
    core.tick(stream_s=1.6, mono_s=1.6)
    steps = kinds(sent, messages.StepMessage)
    assert [m.seq for m in steps] == list(range(10))
    assert not any(m.present.visual for m in steps)


def test_injected_messages_go_out_in_order_and_unknown_events_are_refused(engine):
    core, sent, _ = make_core(engine)
    marker = messages.StatusMessage.__new__(messages.StatusMessage)
    core.handle(Publish(marker))
    assert sent == [marker]
    with pytest.raises(TypeError, match="no handler for tuple"):
        core.handle(("eos", "video"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'video' or 'audio'"):
        StreamEnded("subtitles")
