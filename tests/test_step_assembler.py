"""File replay and the live stream core turn events into steps in one place (StepAssembler): the
steps a replay (and so a dataset) is built from are the final steps the core runs the model on.
Without threads: the replay's own events are handed to a StreamCore one at a time, a tick after
each, as its core thread would, so the steps go out provisional and are revised as words come."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from contract import messages
from engines import load_engine
from msrg.checkpoint import load_checkpoint
from realtime.device_health import DeliveryWatch
from realtime.extractors import Extractors
from realtime.extractors.asr import AsrResult
from realtime.extractors.vad import SegmentEnd, SegmentStart
from realtime.pipeline_options import PipelineOptions
from realtime.replay import audio_blocks, extract
from realtime.session import DEFAULT_CHECKPOINT
from realtime.status import SessionStats
from realtime.step_assembler import StepAssembler
from realtime.stream_core import CoreInputs, StreamCore
from realtime.stream_events import (
    FaceAnalysed,
    SegmentClosed,
    SegmentOpened,
    StreamEnded,
    VoiceAnalysed,
    WordsRecognised,
)
from realtime.tts import silence, synthesize_speech
from realtime.types import AudioBlock, EmbeddedWord, FaceObservation, VideoFrame, Word

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FPS = 30


class EveryThirdOfASecond:
    """Stands in for Whisper: one word per 0.3 s of the segment, so words land on known steps."""

    def transcribe(self, samples: np.ndarray, t_start_s: float) -> list[Word]:
        n = int(len(samples) / 16000 / 0.3)
        return [Word(f"w{i}", t_start_s + 0.3 * i, t_start_s + 0.3 * i + 0.25, 0.9)
                for i in range(n)]  # fmt: skip


class PrefixEmbedder:
    """Stands in for the sentence encoder: word i's embedding depends on the prefix, as the
    causal one does; as wide as the shipped checkpoint's text input."""

    dim = load_checkpoint(DEFAULT_CHECKPOINT).config.text_dim

    def embed_words(self, words: list[Word]) -> list[EmbeddedWord]:
        out, total = [], 0.0
        for w in words:
            total += w.t_start_s
            out.append(EmbeddedWord(w, np.full(self.dim, np.sin(total), np.float32)))
        return out


class BlinkingFace:
    """Stands in for the face extractor: a face except in every fifth frame analysed."""

    def __init__(self) -> None:
        self.calls = 0

    def process(self, frame: VideoFrame, near=None) -> FaceObservation:
        self.calls += 1
        present = self.calls % 5 != 0
        features = np.full(12, np.cos(frame.t_s) if present else 0.0, np.float32)
        return FaceObservation(frame.t_s, present, features, (0, 0, 4, 4) if present else None)


def capture_order(signal: np.ndarray) -> list[VideoFrame | AudioBlock]:
    """Audio blocks and 30 fps frames of the same span, interleaved by capture time."""
    blocks = audio_blocks(signal)
    image = np.zeros((4, 4, 3), np.uint8)
    frames = [VideoFrame(i, i / FPS, image) for i in range(int(len(signal) / 16000 * FPS))]
    return sorted(blocks + frames, key=lambda r: r.t_s if isinstance(r, VideoFrame) else r.t_start_s)


@pytest.fixture(scope="module")
def replayed() -> tuple[list, list]:
    """(the replay's steps, the events the replay handed its StepAssembler)"""
    signal = np.concatenate([silence(0.5), synthesize_speech("what a lovely day it is"),
                             silence(1.0), synthesize_speech("no it is not"), silence(0.8)])  # fmt: skip
    extractors = Extractors(BlinkingFace(), EveryThirdOfASecond(), PrefixEmbedder())  # type: ignore[arg-type]
    events: list = []
    push = StepAssembler.push

    def recording_push(self: StepAssembler, event) -> None:  # noqa: ANN001
        events.append(event)
        push(self, event)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(StepAssembler, "push", recording_push)
        result = extract(capture_order(signal), extractors, has_video=True, has_audio=True)
    return result.steps, events


def test_replay_hands_its_assembler_the_pipelines_events(replayed) -> None:
    steps, events = replayed
    kinds = {type(e) for e in events}
    assert {FaceAnalysed, VoiceAnalysed, SegmentOpened, SegmentClosed, WordsRecognised} <= kinds
    ends = [e for e in events if isinstance(e, StreamEnded)]
    assert [e.kind for e in ends] == ["audio", "video"] and events[-1] is ends[-1]
    assert ends[0].t_end_s == pytest.approx(len(steps) / 10, abs=0.1)
    assert sum(s.present[0] for s in steps) > 10 and sum(s.present[1] for s in steps) > 10
    assert 0 < sum(s.present[2] for s in steps) < len(steps)


class ShortWordsWithGaps:
    """Stands in for Whisper: a 0.1 s word every 0.4 s of the segment, so 0.3 s gaps (shorter
    than the 0.6 s pause) separate the words, as commas and breaths do in real speech."""

    def transcribe(self, samples: np.ndarray, t_start_s: float) -> list[Word]:
        n = int(len(samples) / 16000 / 0.4)
        return [Word(f"w{i}", t_start_s + 0.4 * i, t_start_s + 0.4 * i + 0.1, 0.9)
                for i in range(n)]  # fmt: skip


def _text_runs(text_hold: bool) -> int:
    """Runs of steps with text in the replay of one sentence whose words have gaps between them."""
    signal = np.concatenate([silence(0.5), synthesize_speech("what a lovely day it is"),
                             silence(0.8)])  # fmt: skip
    extractors = Extractors(BlinkingFace(), ShortWordsWithGaps(), PrefixEmbedder())  # type: ignore[arg-type]
    steps = extract(capture_order(signal), extractors, has_video=True, has_audio=True,
                    text_hold=text_hold).steps  # fmt: skip
    text = np.array([s.present[0] for s in steps], int)
    return len(np.flatnonzero(np.diff(np.concatenate([[0], text, [0]])))) // 2


def test_text_is_held_through_the_pauses_within_an_utterance() -> None:
    """PipelineOptions.text_hold (on by default, as live): from the first word of an utterance to
    its last every step has text, where without the hold the gaps between words leave steps
    without any."""
    assert _text_runs(text_hold=False) > 3
    assert _text_runs(text_hold=True) == 1


@pytest.mark.parametrize("entry", ["main", "multi"])
def test_the_hold_is_the_pause_unless_turned_off_on_the_command_line(entry: str) -> None:
    import main
    from realtime import multi

    module, demo = (main, ["--demo"]) if entry == "main" else (multi, ["--demo", "1"])

    def pipeline(*flags: str) -> PipelineOptions:
        return module.options_from(module.build_parser().parse_args(demo + list(flags))).pipeline

    held, plain = pipeline("--pause-ms", "800"), pipeline("--no-text-hold")
    assert (held.text_hold, held.text_hold_s) == (True, 0.8)
    assert (plain.text_hold, plain.text_hold_s) == (False, 0.0)


def test_replay_steps_equal_the_final_steps_of_the_stream_core(replayed) -> None:
    steps, events = replayed
    engine = load_engine("eager", DEFAULT_CHECKPOINT)
    sent: list[messages.Message] = []
    core = StreamCore(PipelineOptions(session="test", baseline_s=0.0), engine, CoreInputs(
        has_video=True, has_audio=True, live=False, stats=SessionStats(),
        watch=DeliveryWatch(1.0), emit=sent.append,
    ))  # fmt: skip
    published = []
    push = core.runner.push

    def recording_push(batch):  # noqa: ANN001, ANN202
        out = push(batch)
        published.extend(out)
        return out

    core.runner.push = recording_push  # type: ignore[method-assign]
    t = 0.0
    for event in events:  # one event, then one tick, as the core thread does when events trickle
        core.handle(event)
        t += 0.01
        core.tick(stream_s=t, mono_s=t)
    for _ in range(10):
        t += 0.01
        if core.tick(stream_s=t, mono_s=t):
            break
    assert core.done
    assert any(o.revision > 0 for o in published)  # words came late: steps were re-run
    finals = {o.features.seq: o.features for o in published if o.final}
    assert sorted(finals) == [s.seq for s in steps]
    for step in steps:
        for field in dataclasses.fields(step):
            ours, core_s = getattr(step, field.name), getattr(finals[step.seq], field.name)
            assert np.array_equal(ours, core_s), (step.seq, field.name)
    utterances = [m for m in sent if isinstance(m, messages.UtteranceMessage)]
    assert len(utterances) == sum(isinstance(e, SegmentClosed) for e in events) == 2


def test_unknown_events_are_refused() -> None:
    from realtime.aligner import AlignerOptions

    assembler = StepAssembler(AlignerOptions())
    with pytest.raises(TypeError, match="no handler for tuple"):
        assembler.push(("eos", "video"))  # type: ignore[arg-type]
    assembler.push(SegmentOpened(SegmentStart(0, 0.5, 0.7)))  # the tracker's alone
    assembler.push(SegmentClosed(SegmentEnd(0, 0.5, 1.0, 1.6), 0.0))
    assert assembler.awaiting_asr == 1
    result = AsrResult(0, 0.5, 1.0, True, (), 0.0, 0.0)
    assembler.push(WordsRecognised(result, ()))  # both take words
    assert assembler.awaiting_asr == 0
