"""The live pipeline's settings, checked when made (a bad value is a one-line error)."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field

from realtime.aligner import AlignerOptions


@dataclass(frozen=True)
class PipelineOptions:
    step_hz: float = 10.0
    pause_ms: float = 600.0
    # Text stays present through a gap between words shorter than the pause: a step means the
    # estimate from everything heard so far in the utterance (docs/model.md). False: text only
    # while a word's span overlaps the step, as every checkpoint up to msrg-live.pt was trained.
    text_hold: bool = True
    duration_s: float | None = None  # stop after this much stream time
    late_after_s: float = 0.5  # a modality this late no longer holds a step back (live only)
    partial_asr_s: float = 0.0  # transcribe a growing segment every so often (0: finals only)
    # Start transcribing at a pause onset and keep the result if the pause is confirmed with the
    # same audio (realtime/extractors/asr.py); False waits for the pause, as before.
    speculative_asr: bool = True
    # Face analysis rate: the first frame of each 1/face_hz interval is analysed and the others
    # reuse its result (None: the step rate, so one analysis per step; 0: every frame). At 30 fps
    # this saves two thirds of the largest extraction cost, and a step pools one frame's
    # expression instead of three near-identical ones.
    face_hz: float | None = None
    # Faces tracked per frame (--max-faces 1..4; realtime/people.py): each step's `faces` and
    # `speaker`. None: only the single-face path (no `faces`), as before issue 33.
    max_faces: int | None = 4
    asr_wait_s: float = 60.0  # at the end of a stream, wait this long for pending transcripts
    status_period_s: float = 1.0
    # Freed C heap goes back to the system this often (realtime/native_heap.py; the soak).
    heap_trim_period_s: float = 60.0
    # A live device silent this long is reported lost (at once, not at the next 1 Hz status),
    # so a dashboard learns of an unplugged camera within ~1 s; real frame gaps are < 0.2 s.
    lost_after_s: float = 1.0
    audio_history_s: float = 40.0  # audio kept for cutting speech segments (> max segment)
    # New audio gathered before it is written to openSMILE's streaming graph
    # (realtime/extractors/voice.py): 0.1 s for live latency; a file replayed flat out uses 1 s.
    voice_chunk_s: float = 0.1
    session: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    baseline_s: float = 20.0  # seconds of face and of speech for the per-person baseline (0: off)
    baseline: dict | None = None  # a saved baseline (baseline.json) to use instead of measuring

    @property
    def text_hold_s(self) -> float:
        return AlignerOptions.hold_for(self.pause_ms, self.text_hold)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.step_hz) and 0 < self.step_hz <= 100):
            raise ValueError(f"--step-hz must be in (0, 100], got {self.step_hz}")
        if not (math.isfinite(self.pause_ms) and self.pause_ms > 0):
            raise ValueError(f"--pause-ms must be > 0, got {self.pause_ms}")
        if self.duration_s is not None and not (self.duration_s > 0):
            raise ValueError(f"--duration must be > 0 seconds, got {self.duration_s}")
        if self.face_hz is not None and not (math.isfinite(self.face_hz) and self.face_hz >= 0):
            raise ValueError(f"--face-hz must be >= 0, got {self.face_hz}")
        if self.max_faces is not None and not (
            isinstance(self.max_faces, int) and 1 <= self.max_faces <= 4
        ):
            raise ValueError(f"--max-faces must be from 1 to 4, got {self.max_faces!r}")
        if not (math.isfinite(self.voice_chunk_s) and 0 < self.voice_chunk_s <= 5):
            raise ValueError(f"voice_chunk_s must be in (0, 5] seconds, got {self.voice_chunk_s}")
        if not (self.lost_after_s > 0 and self.status_period_s > 0):
            raise ValueError("lost_after_s and status_period_s must be > 0")
        if not (math.isfinite(self.baseline_s) and self.baseline_s >= 0):
            raise ValueError(
                f"--baseline-s must be a number of seconds >= 0, got {self.baseline_s}"
            )
