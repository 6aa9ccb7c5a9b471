"""The streaming lifecycle (realtime/stage.py): every stage speaks push, flush, reset, close, and
what a stage opens is released on every way out, a failed construction included."""

from __future__ import annotations

import numpy as np
import pytest

from realtime import audio_frontend
from realtime.aligner import Aligner
from realtime.audio_frontend import AudioFrontEnd
from realtime.extractors.face import FaceSampler
from realtime.extractors.vad import SileroVad, SpeechSegmenter, VadModelError
from realtime.extractors.voice import VoiceExtractor, VoiceFeatureError
from realtime.stage import Stage
from realtime.step_assembler import StepAssembler
from realtime.stepper import StepRunner
from realtime.types import AudioBlock, FaceObservation, StepBatch, VideoFrame
from realtime.utterances import UtteranceTracker

STAGES = (SileroVad, SpeechSegmenter, VoiceExtractor, FaceSampler, AudioFrontEnd, Aligner,
          UtteranceTracker, StepAssembler, StepRunner)  # fmt: skip


@pytest.mark.parametrize("cls", STAGES, ids=lambda c: c.__name__)
def test_every_stage_speaks_the_lifecycle(cls: type) -> None:
    assert issubclass(cls, Stage)
    for verb in ("push", "flush", "reset", "close"):
        assert callable(getattr(cls, verb)), verb
    assert not getattr(cls, "__abstractmethods__", None)  # nothing left unimplemented


def tone(seq: int, t_s: float, n: int = 1600) -> AudioBlock:
    t = np.arange(n) / 16000 + t_s
    return AudioBlock(seq, t_s, (0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32))


def test_the_audio_front_end_releases_openSMILE_and_the_VAD_when_left() -> None:
    with AudioFrontEnd(voice_chunk_s=0.1) as front:
        for i in range(5):
            front.push(tone(i, i * 0.1))
        assert not front.voice.closed
    assert front.voice.closed  # openSMILE's native handle is freed
    front.close()  # and closing again is harmless
    with pytest.raises(VoiceFeatureError, match="closed"):
        front.push(tone(5, 0.5))


def test_a_vad_that_fails_to_load_leaves_no_openSMILE_handle(monkeypatch) -> None:
    made: list[VoiceExtractor] = []

    class Recorded(VoiceExtractor):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    def missing() -> SileroVad:
        raise VadModelError("package silero-vad is not installed")

    monkeypatch.setattr(audio_frontend, "VoiceExtractor", Recorded)
    monkeypatch.setattr(audio_frontend, "SileroVad", missing)
    with pytest.raises(VadModelError):
        AudioFrontEnd()
    (voice,) = made
    assert voice.closed


def test_a_graph_that_fails_to_build_frees_its_handle(monkeypatch) -> None:
    from opensmile.core.lib import OpenSMILE

    failed: list[OpenSMILE] = []
    initialize = OpenSMILE.initialize

    def failing_initialize(self, *args, **kwargs) -> None:
        initialize(self, *args, **kwargs)  # the handle is allocated ...
        if "nBits" in kwargs.get("options", {}):  # the streaming graph (not Smile's own)
            failed.append(self)
            raise RuntimeError("bad config")  # ... and then the graph fails to build

    monkeypatch.setattr(OpenSMILE, "initialize", failing_initialize)
    with pytest.raises(RuntimeError, match="bad config"):
        VoiceExtractor()
    (graph,) = failed
    assert graph._smileobj is None  # freed, not left to the garbage collector


def test_vad_flush_owes_nothing_and_close_drops_the_model() -> None:
    vad = SileroVad()
    assert len(vad.push(tone(0, 0.0, 1000))) == 1  # one whole 512-sample chunk, 488 pending
    assert vad.flush() == []  # a partial chunk is never scored
    assert len(vad.push(tone(0, 7.0, 512))) == 1  # flushed: a new stream, no gap warning
    vad.close()
    vad.close()
    with pytest.raises(VadModelError, match="closed"):
        vad.push(tone(1, 7.032, 512))


class OneFace:
    """Stands in for the face extractor: a face in every frame, counting analyses."""

    def __init__(self) -> None:
        self.calls = 0

    def process(self, frame: VideoFrame, near=None) -> FaceObservation:
        self.calls += 1
        return FaceObservation(frame.t_s, True, np.ones(12, np.float32), (0, 0, 4, 4))


def test_face_sampler_reset_forgets_the_held_analysis() -> None:
    face = OneFace()
    sampler = FaceSampler(face, rate_hz=10.0)
    image = np.zeros((4, 4, 3), np.uint8)
    sampler.push(VideoFrame(0, 0.00, image))
    sampler.push(VideoFrame(1, 0.03, image))  # same 100 ms interval: reused
    assert face.calls == 1 and sampler.flush() is None
    sampler.reset()
    sampler.push(VideoFrame(0, 0.03, image))  # a new stream analyses again
    assert face.calls == 2
    sampler.close()  # the shared extractor is not the sampler's to close
    assert face.calls == 2


class CountingEngine:
    """Just enough of an engine for the step runner's lifecycle: states and closes counted."""

    class config:  # noqa: N801 - read as engine.config.max_utterance_steps
        max_utterance_steps = 10

    def __init__(self) -> None:
        self.initial, self.closed = 0, 0

    def initial_state(self, batch: int) -> object:
        self.initial += 1
        return ("state", self.initial)

    def close(self, state: object) -> None:
        self.closed += 1


def test_step_runner_resets_to_the_initial_state_and_closes_once() -> None:
    engine = CountingEngine()
    runner = StepRunner(engine)  # type: ignore[arg-type]
    assert runner.push(StepBatch()) == [] and runner.flush() == []
    runner.reset()
    assert engine.initial == 2  # a new stream starts from a fresh initial state
    runner.close()
    runner.close()
    assert engine.closed == 1  # the engine frees the stream's state once
