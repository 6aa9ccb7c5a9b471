"""The face and voice as readouts of their own, from features the pipeline has already computed.

Pure: no threads, no I/O; `Readouts.add` takes each aligned step once, in step order.

Face (a step in which a face was analysed): the seven FER2013 class probabilities of the
expression network, pooled by the aligner (mean over the step's frames with a face); valence and
arousal as the probability-weighted mean of the classes' coordinates in CIRCUMPLEX; quality, the
mean face-detector confidence (realtime/extractors/face.py).

CIRCUMPLEX: pleasure and arousal of the emotion words angry, disgusted, afraid, happy, sad and
surprised as rated by Russell & Mehrabian (1977), "Evidence for a three-factor theory of
emotions", Journal of Research in Personality 11(3), 273-294 (scale -1..1; the same coordinates
place the OCC emotions in Gebhard's ALMA, 2005); neutral at the origin. An approximation: the
ratings are of emotion words, not of faces, and a mixture of expressions maps to the mean of
their points, so it can never reach the rim of the circle (valence is bounded by [-0.64, 0.81]).

Voice (a step with speech): eGeMAPS low-level descriptors (Eyben et al. 2016, "The Geneva
Minimalistic Acoustic Parameter Set (GeMAPS) for voice research and affective computing", IEEE
Trans. Affective Computing 7(2), 190-202): loudness (Loudness_sma3, mean over the step), pitch
(F0semitoneFrom27.5Hz_sma3nz, mean of the voiced frames) and pitch variability (standard deviation
of voiced F0 over the last PITCH_WINDOW_S of speech), as measured; and arousal, a linear readout
of the step's 25 descriptor means fitted on real actors (realtime/voice_readout.py; its figures
on annotated speech are in docs/model-card.md). The absolute values depend on the microphone's
gain and on the speaker; the baseline-relative values (realtime/baseline.py) remove both.
"""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass

import numpy as np

from contract.readout_messages import (
    CIRCUMPLEX,
    EXPRESSION_LABELS,
    Expressions,
    FaceBaseline,
    FaceReadout,
    VoiceBaseline,
    VoiceReadout,
)
from realtime.baseline import Baseline
from realtime.types import StepFeatures
from realtime.voice_readout import VoiceReadoutModel, load_voice_readout

_VA = np.array([CIRCUMPLEX[label] for label in EXPRESSION_LABELS])  # (7, 2)
QUALITY_INDEX = len(EXPRESSION_LABELS) + 4  # face feature: detection confidence (FACE_GEOMETRY)

LOUDNESS_INDEX = 0  # eGeMAPSv02 LLD: Loudness_sma3
F0_INDEX = 10  # eGeMAPSv02 LLD: F0semitoneFrom27.5Hz_sma3nz (0 in unvoiced frames)
PITCH_WINDOW_S = 1.0  # pitch variability: voiced frames of the speech steps of the last second
MIN_VOICED_FRAMES = 5  # 50 ms of voiced frames before a variability is given
DIGITS = 6


def face_readout(visual: np.ndarray) -> tuple[Expressions, float, float, float]:
    """(expressions, valence, arousal, quality) of a step's pooled face features (12,)."""
    probs = np.clip(np.asarray(visual[: len(EXPRESSION_LABELS)], np.float64), 0.0, None)
    total = probs.sum()
    probs = probs / total if total > 0 else np.full(len(probs), 1.0 / len(probs))
    valence, arousal = (probs @ _VA).tolist()
    quality = float(np.clip(visual[QUALITY_INDEX], 0.0, 1.0))
    expressions = Expressions(*(round(float(p), DIGITS) for p in probs))
    return expressions, round(valence, DIGITS), round(arousal, DIGITS), round(quality, DIGITS)


class PitchWindow:
    """Voiced F0 frame statistics of the speech steps of the last `span_s` seconds."""

    def __init__(self, span_s: float) -> None:
        self.span_s = span_s
        self._steps: collections.deque[tuple[float, int, float, float]] = collections.deque()

    def add(self, t_end_s: float, n: int, total: float, squares: float) -> float | None:
        self._steps.append((t_end_s, n, total, squares))
        while self._steps and self._steps[0][0] <= t_end_s - self.span_s + 1e-9:
            self._steps.popleft()
        count = sum(s[1] for s in self._steps)
        if count < MIN_VOICED_FRAMES:
            return None
        mean = sum(s[2] for s in self._steps) / count
        variance = sum(s[3] for s in self._steps) / count - mean * mean
        return math.sqrt(max(variance, 0.0))


@dataclass(frozen=True)
class StepReadout:
    face: FaceReadout | None
    voice: VoiceReadout | None


class Readouts:
    """Per session: the readouts of each step, and their baseline-relative values."""

    def __init__(
        self, baseline: Baseline | None = None, voice: VoiceReadoutModel | None = None
    ) -> None:
        self.baseline = baseline
        self.voice = voice or load_voice_readout()
        self._pitch = PitchWindow(PITCH_WINDOW_S)

    def add(self, step: StepFeatures) -> StepReadout:
        _has_text, speech, face_seen = step.present
        face = self._face(step) if face_seen else None
        voice = self._voice(step) if speech else None
        return StepReadout(face, voice)

    def _relative(self, kind: str, values: dict[str, float | None]) -> dict | None:
        if self.baseline is None:
            return None
        rel = self.baseline.observe(kind, values)
        if rel is None:
            return None
        return {k: None if v is None else round(v, DIGITS) for k, v in rel.items()}

    def _face(self, step: StepFeatures) -> FaceReadout:
        expressions, valence, arousal, quality = face_readout(step.visual)
        rel = self._relative("face", {"valence": valence, "arousal": arousal})
        return FaceReadout(expressions, valence, arousal, quality,
                           FaceBaseline(**rel) if rel else None)  # fmt: skip

    def _voice(self, step: StepFeatures) -> VoiceReadout:
        n, total, squares = step.voiced_f0
        values: dict[str, float | None] = {
            "loudness": max(0.0, float(step.audio[LOUDNESS_INDEX])),
            "pitch": total / n if n else None,
            "pitch_variability": self._pitch.add(step.t_end_s, n, total, squares),
        }
        values = {k: None if v is None else round(v, DIGITS) for k, v in values.items()}
        values["arousal"] = round(self.voice.arousal(step.audio), DIGITS)
        rel = self._relative("voice", values)
        return VoiceReadout(**values, baseline=VoiceBaseline(**rel) if rel else None)  # type: ignore[arg-type]


class ReadoutBook:
    """The pipeline's side of the readouts: each new step's readout, kept by seq until the step
    is published final (revisions reuse it: readouts do not depend on words), and the baseline's
    saved form each time a modality's baseline is set (`on_baseline`, e.g. baseline.json)."""

    def __init__(self, baseline: Baseline | None, on_baseline=None) -> None:
        self.readouts = Readouts(baseline)
        self.baseline = baseline
        self.on_baseline = on_baseline
        self._by_seq: dict[int, StepReadout] = {}
        self._ready = self._ready_parts()

    def _ready_parts(self) -> tuple[bool, ...]:
        b = self.baseline
        return () if b is None else tuple(p.ready for p in b.parts.values())

    def admit(self, steps: list[StepFeatures]) -> list[StepFeatures]:
        for step in steps:
            self._by_seq[step.seq] = self.readouts.add(step)
        ready = self._ready_parts()
        if ready != self._ready and self.baseline is not None and not self.baseline.loaded:
            self._ready = ready
            if self.on_baseline is not None:
                self.on_baseline(self.baseline.to_json())
        return steps

    def take(self, seq: int, final: bool) -> StepReadout:
        readout = (self._by_seq.pop if final else self._by_seq.get)(seq, None)
        return readout or StepReadout(None, None)

    def calibration(self) -> dict | None:
        return None if self.baseline is None else self.baseline.status()
