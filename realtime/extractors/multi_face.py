"""Per-person face readouts of a frame: detector, tracks with ids, expression, pose, speaking.

`MultiFaceAnalyzer(max_faces).analyse(frame) -> list[PersonFace]`, largest first, and
`add_audio(block)` with each microphone block; `people(t_s, voice_active)` once a step gives each
tracked face's `speaking` probability and the step's `speaker` (realtime/speaker.py).

Each face: its track id (realtime/face_tracks.py), box in frame pixels, the expression network's
seven probabilities on a 64x64 grey crop of its box (the same crop as realtime/extractors/face.py),
valence and arousal as the probability-weighted mean of CIRCUMPLEX (as realtime/readouts.py does
for the primary face), quality, head pose (degrees, face_mesh.head_pose) and mouth opening.
Quality: the detector's confidence for the Haar fallback; for Face Mesh (which reports none) a
size-and-frontality score, min(1, side / 96 px) * cos(yaw) * cos(pitch), clipped to [0, 1].
`PersonBaselines`: one realtime.baseline.Baseline (face part) per id.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from contract.readout_messages import CIRCUMPLEX, EXPRESSION_LABELS
from realtime.baseline import Baseline
from realtime.extractors.expression_net import INPUT_SIZE_PX, ExpressionNet, Expressions
from realtime.extractors.face_mesh import (
    MAX_FACES_LIMIT,
    Box,
    MultiFaceDetector,
    head_pose,
    mouth_opening,
)
from realtime.face_tracks import FaceTracker
from realtime.speaker import SpeakerFinder
from realtime.types import AudioBlock, VideoFrame

_VA = np.array([CIRCUMPLEX[name] for name in EXPRESSION_LABELS], np.float32)  # (7, 2)
MARGIN_FRAC = 0.1


@dataclass
class PersonFace:
    id: int
    box: Box
    probabilities: np.ndarray  # (7,) EXPRESSION_LABELS order
    valence: float
    arousal: float
    quality: float
    pose: dict[str, float] | None  # yaw, pitch, roll in degrees; None without landmarks
    mouth: float | None
    speaking: float = 0.0
    baseline: dict[str, float | None] | None = None

    @property
    def area(self) -> int:
        return self.box[2] * self.box[3]

    def expressions(self) -> dict[str, float]:
        return {n: round(float(p), 4) for n, p in zip(EXPRESSION_LABELS, self.probabilities)}


def crop(image: np.ndarray, box: Box) -> np.ndarray:
    """(64, 64) uint8 grey crop of the box plus MARGIN_FRAC per side, clipped to the image."""
    x, y, w, h = box
    mx, my = round(MARGIN_FRAC * w), round(MARGIN_FRAC * h)
    x0, y0 = max(0, x - mx), max(0, y - my)
    x1, y1 = min(image.shape[1], x + w + mx), min(image.shape[0], y + h + my)
    grey = cv2.cvtColor(image[y0:y1, x0:x1], cv2.COLOR_BGR2GRAY)
    return cv2.resize(grey, (INPUT_SIZE_PX, INPUT_SIZE_PX), interpolation=cv2.INTER_AREA)


class PersonBaselines:
    """A face baseline per track id, each calibrated over that person's own first steps."""

    def __init__(self, baseline_s: float, hop_s: float) -> None:
        self.baseline_s, self.hop_s = baseline_s, hop_s
        self._by_id: dict[int, Baseline] = {}

    def observe(self, fid: int, valence: float, arousal: float) -> dict[str, float | None] | None:
        base = self._by_id.get(fid)
        if base is None:
            base = self._by_id[fid] = Baseline(self.baseline_s, self.hop_s, expect_voice=False)
        return base.observe("face", {"valence": valence, "arousal": arousal})

    def state(self, fid: int) -> str:
        base = self._by_id.get(fid)
        return base.state if base is not None else ("off" if self.baseline_s == 0 else
                                                    "calibrating")  # fmt: skip


@dataclass
class MultiFaceAnalyzer:
    max_faces: int = MAX_FACES_LIMIT
    backend: str = "auto"
    net: Expressions | None = None
    detector: MultiFaceDetector = field(init=False)
    tracker: FaceTracker = field(default_factory=FaceTracker)
    speakers: SpeakerFinder = field(default_factory=SpeakerFinder)

    def __post_init__(self) -> None:
        self.detector = MultiFaceDetector(self.max_faces, backend=self.backend)
        if self.net is None:
            self.net = ExpressionNet()
        self.latest: list[PersonFace] = []

    @property
    def fallback_reason(self) -> str | None:
        return self.detector.fallback_reason

    def add_audio(self, block: AudioBlock) -> None:
        self.speakers.add_audio(block.t_start_s, block.samples)

    def analyse(self, frame: VideoFrame) -> list[PersonFace]:
        image = frame.image
        height, width = image.shape[:2]
        tracked = self.tracker.update(frame.t_s, self.detector.detect(image), image)
        if not tracked:
            self.latest = []
            return []
        probs = self.net.predict(np.stack([crop(image, f.box) for _, f in tracked]))  # (N, 7)
        people = []
        for (fid, face), p in zip(tracked, probs):
            valence, arousal = (float(v) for v in p @ _VA)
            pose = mouth = None
            quality = face.confidence
            if face.landmarks is not None:
                pose = head_pose(face.landmarks, (width, height))
                mouth = mouth_opening(face.landmarks)
                side = min(face.box[2], face.box[3])
                quality = (min(1.0, side / 96) * math.cos(math.radians(min(abs(pose["yaw"]), 90)))
                           * math.cos(math.radians(min(abs(pose["pitch"]), 90))))  # fmt: skip
            people.append(PersonFace(fid, face.box, p, round(valence, 4), round(arousal, 4),
                                     round(max(0.0, min(1.0, quality)), 4), pose, mouth))  # fmt: skip
        mouths = {pf.id: pf.mouth for pf in people if pf.mouth is not None}
        if mouths:
            self.speakers.add_mouths(frame.t_s, mouths)
        self.latest = people
        return people

    def people(self, t_s: float, voice_active: bool) -> tuple[list[PersonFace], int | None]:
        """The latest frame's faces with their speaking probabilities, and the step's speaker."""
        ids = [pf.id for pf in self.latest if pf.mouth is not None or len(self.latest) == 1]
        probs = self.speakers.probabilities(t_s, ids, voice_active)
        for pf in self.latest:
            pf.speaking = probs.get(pf.id, 0.0)
        return self.latest, self.speakers.speaker(probs)

    def primary(self, speaker: int | None) -> PersonFace | None:
        """The model's visual input and the message's `face`: the speaker, else the largest."""
        for pf in self.latest:
            if pf.id == speaker:
                return pf
        return max(self.latest, key=lambda pf: pf.area, default=None)

    def close(self) -> None:
        self.detector.close()
