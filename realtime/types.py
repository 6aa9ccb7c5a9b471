"""Frozen records that flow through the live pipeline, all stamped with stream time (seconds).

Arrays inside records are never mutated after construction; producers hand over fresh arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SAMPLE_RATE_HZ = 16_000  # every audio block in the pipeline is mono float32 at this rate


@dataclass(frozen=True, slots=True)
class VideoFrame:
    seq: int
    t_s: float  # stream time of capture
    image: np.ndarray  # (H, W, 3) uint8 BGR


@dataclass(frozen=True, slots=True)
class AudioBlock:
    seq: int
    t_start_s: float  # stream time of the first sample
    samples: np.ndarray  # (N,) float32 mono in [-1, 1] at SAMPLE_RATE_HZ

    @property
    def duration_s(self) -> float:
        return len(self.samples) / SAMPLE_RATE_HZ

    @property
    def t_end_s(self) -> float:
        return self.t_start_s + self.duration_s


@dataclass(frozen=True, slots=True)
class FaceObservation:
    """Face features of one video frame."""

    t_s: float
    present: bool
    features: np.ndarray  # (VISUAL_DIM,) float32: 7 expression probabilities + 5 geometry values
    box: tuple[int, int, int, int] | None  # (x, y, w, h) in pixels of the source frame
    # Every tracked face of the frame (realtime/people.py PeopleFrame), or None when several
    # people are not analysed (--max-faces off, dataset builds).
    people: object | None = None


@dataclass(frozen=True, slots=True)
class VoiceFrames:
    """Consecutive low-level voice descriptor frames (eGeMAPS LLD), 10 ms hop."""

    t_start_s: float  # stream time of the first frame's start
    hop_s: float
    values: np.ndarray  # (N, AUDIO_DIM) float32


@dataclass(frozen=True, slots=True)
class SpeechProbability:
    """Voice activity probability of one VAD chunk."""

    t_start_s: float
    t_end_s: float
    probability: float


@dataclass(frozen=True, slots=True)
class Word:
    text: str
    t_start_s: float
    t_end_s: float
    probability: float


@dataclass(frozen=True, slots=True)
class EmbeddedWord:
    """A recognised word with its causal contextual embedding (depends on earlier words only)."""

    word: Word
    embedding: np.ndarray  # (TEXT_DIM,) float32


@dataclass(frozen=True, slots=True)
class StepFeatures:
    """One aligned model time step."""

    seq: int
    t_start_s: float
    t_end_s: float
    text: np.ndarray  # (TEXT_DIM,)
    audio: np.ndarray  # (AUDIO_DIM,)
    visual: np.ndarray  # (VISUAL_DIM,)
    present: tuple[bool, bool, bool]  # text, audio, visual
    t_newest_capture_s: float  # capture time of the newest sample that went into the step
    # Voiced frames of the step's speech: count, sum and sum of squares of their F0 (semitones),
    # for the voice readout (realtime/readouts.py); zeros outside speech.
    voiced_f0: tuple[int, float, float] = (0, 0.0, 0.0)
    # The step's tracked faces and speaker (realtime/people.py StepPeople), or None when several
    # people are not analysed.
    people: object | None = None


@dataclass(frozen=True, slots=True)
class StepBatch:
    """What the aligner gives at a pull or a flush: steps built for the first time, provisional
    steps whose words changed since (rebuilt, same seq), and the seqs that became final, oldest
    first. The step runner takes it whole (StepRunner.push)."""

    new: tuple[StepFeatures, ...] = ()
    revised: tuple[StepFeatures, ...] = ()
    final: tuple[int, ...] = ()
