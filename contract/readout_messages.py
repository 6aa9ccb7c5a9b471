"""The readout blocks of the wire format: the face and voice readouts of a step and the status's
calibration state (realtime/readouts.py and realtime/baseline.py compute them). Stdlib only, like
contract/messages.py, which carries these records; the JSON Schema describes the same objects.

Rule: a readout that was not measured is absent (null), never zeros that look like a reading.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from contract.message_fields import MessageError, _boolean, _number, _optional

# FER2013's seven classes in the expression network's output order (msrg.config has the same).
EXPRESSION_LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
CALIBRATION_STATES = ("off", "calibrating", "ready")
# (valence, arousal) per FER2013 class: pleasure and arousal ratings of the emotion words angry,
# disgusted, afraid, happy, sad and surprised in Russell & Mehrabian (1977), J. Research in
# Personality 11(3), 273-294 (scale -1..1); neutral at the origin. realtime/readouts.py maps a
# face's class probabilities to the probability-weighted mean of these points.
CIRCUMPLEX: dict[str, tuple[float, float]] = {
    "angry": (-0.51, 0.59),
    "disgust": (-0.60, 0.35),
    "fear": (-0.64, 0.60),
    "happy": (0.81, 0.51),
    "sad": (-0.63, -0.27),
    "surprise": (0.40, 0.67),
    "neutral": (0.0, 0.0),
}
Z_LIMIT = 10.0  # baseline-relative values (robust z-scores) are clipped to [-Z_LIMIT, Z_LIMIT]
MAX_SEMITONES = 120.0  # F0 in semitones above 27.5 Hz: 120 is ~28 kHz, far above any voice
SUM_TOLERANCE = 1e-3  # expression probabilities sum to 1 within this (float32 softmax, rounding)


def _z(name: str, value: Any) -> float:
    return _number(name, value, -Z_LIMIT, Z_LIMIT)


def _typed_or_none(name: str, value: Any, kind: type) -> None:
    if value is not None and not isinstance(value, kind):
        raise MessageError(f"{name} must be a {kind.__name__} or null, got {type(value).__name__}")


@dataclass(frozen=True)
class Expressions:
    """FER2013 class probabilities, mean over the step's analysed frames (they sum to 1)."""

    angry: float
    disgust: float
    fear: float
    happy: float
    sad: float
    surprise: float
    neutral: float

    def __post_init__(self) -> None:
        for name in EXPRESSION_LABELS:
            _number(f"face.expressions.{name}", getattr(self, name), 0.0, 1.0)
        total = sum(getattr(self, name) for name in EXPRESSION_LABELS)
        if abs(total - 1.0) > SUM_TOLERANCE:
            raise MessageError(f"face.expressions must sum to 1, got {total:.6f}")


@dataclass(frozen=True)
class FaceBaseline:
    """Face readouts relative to the person's baseline: robust z-scores."""

    valence: float
    arousal: float

    def __post_init__(self) -> None:
        for f in fields(self):
            _z(f"face.baseline.{f.name}", getattr(self, f.name))


@dataclass(frozen=True)
class FaceReadout:
    """What the face showed in the step: expressions, circumplex valence/arousal, quality."""

    expressions: Expressions
    valence: float  # [-1, 1], from the expressions (realtime/readouts.py names the coordinates)
    arousal: float  # [-1, 1]
    quality: float  # [0, 1): mean face-detector confidence over the analysed frames
    baseline: FaceBaseline | None = None  # null until the baseline is ready (or when it is off)

    NESTED = {"expressions": Expressions, "baseline": FaceBaseline}

    def __post_init__(self) -> None:
        if not isinstance(self.expressions, Expressions):
            raise MessageError("face.expressions must be an Expressions record")
        _number("face.valence", self.valence, -1.0, 1.0)
        _number("face.arousal", self.arousal, -1.0, 1.0)
        _number("face.quality", self.quality, 0.0, 1.0)
        _typed_or_none("face.baseline", self.baseline, FaceBaseline)


@dataclass(frozen=True)
class VoiceBaseline:
    """Voice readouts relative to the person's baseline: robust z-scores (null: not measured)."""

    loudness: float
    pitch: float | None
    pitch_variability: float | None
    arousal: float

    def __post_init__(self) -> None:
        for f in fields(self):
            _optional(_z, f"voice.baseline.{f.name}", getattr(self, f.name))
        for name in ("loudness", "arousal"):
            _z(f"voice.baseline.{name}", getattr(self, name))


@dataclass(frozen=True)
class VoiceReadout:
    """What the voice did in a speech step: eGeMAPS loudness and pitch, and an arousal proxy."""

    loudness: float  # eGeMAPS Loudness_sma3, mean over the step's frames (>= 0)
    pitch: float | None  # mean F0 of the step's voiced frames, semitones above 27.5 Hz
    pitch_variability: float | None  # std of voiced F0 over the last second of speech, semitones
    arousal: float  # [-1, 1]
    baseline: VoiceBaseline | None = None

    NESTED = {"baseline": VoiceBaseline}

    def __post_init__(self) -> None:
        _number("voice.loudness", self.loudness, 0.0)
        _optional(_number, "voice.pitch", self.pitch, 0.0, MAX_SEMITONES)
        _optional(_number, "voice.pitch_variability", self.pitch_variability, 0.0, MAX_SEMITONES)
        _number("voice.arousal", self.arousal, -1.0, 1.0)
        _typed_or_none("voice.baseline", self.baseline, VoiceBaseline)


@dataclass(frozen=True)
class Calibration:
    """The per-person baseline: `calibrating` until `baseline_s` of face and of speech were seen
    (each modality the session has), then `ready`; `off` with --baseline-s 0."""

    state: str
    baseline_s: float  # seconds of face and of speech the baseline needs
    progress: float  # [0, 1]: the least advanced of the expected modalities
    face_s: float  # seconds of face seen so far (counting stops when its baseline is set)
    voice_s: float  # seconds of speech seen so far
    loaded: bool  # the baseline was read from a file (--baseline), not measured in this session

    def __post_init__(self) -> None:
        if self.state not in CALIBRATION_STATES:
            raise MessageError(f"calibration.state must be one of {CALIBRATION_STATES}")
        for name in ("baseline_s", "face_s", "voice_s"):
            _number(f"calibration.{name}", getattr(self, name), 0.0)
        _number("calibration.progress", self.progress, 0.0, 1.0)
        _boolean("calibration.loaded", self.loaded)


# Flat names of the readouts, for steps.csv columns and LSL channels (None / empty / NaN: absent).
READOUT_FIELDS = (
    *(f"face_{label}" for label in EXPRESSION_LABELS),
    "face_valence", "face_arousal", "face_quality",
    "voice_loudness", "voice_pitch", "voice_pitch_variability", "voice_arousal",
    "face_valence_rel", "face_arousal_rel",
    "voice_loudness_rel", "voice_pitch_rel", "voice_pitch_variability_rel", "voice_arousal_rel",
)  # fmt: skip


def readout_values(face: FaceReadout | None, voice: VoiceReadout | None) -> list[float | None]:
    """A step's readouts flat, in READOUT_FIELDS order; None where not measured."""
    fb = face.baseline if face else None
    vb = voice.baseline if voice else None
    return [
        *(getattr(face.expressions, k) if face else None for k in EXPRESSION_LABELS),
        face.valence if face else None, face.arousal if face else None,
        face.quality if face else None,
        voice.loudness if voice else None, voice.pitch if voice else None,
        voice.pitch_variability if voice else None, voice.arousal if voice else None,
        fb.valence if fb else None, fb.arousal if fb else None,
        vb.loudness if vb else None, vb.pitch if vb else None,
        vb.pitch_variability if vb else None, vb.arousal if vb else None,
    ]  # fmt: skip
