"""Several people in a step (issue 33): the records of `msrg.step`'s `faces` list. Stdlib only.

Each tracked face of the step: its track id (stable while the person is in view and when they
come back within a few seconds; realtime/face_tracks.py), its box in frame pixels, the same
readouts as the step's `face` (expressions, valence, arousal, quality, baseline: its own, keyed
by id), its head pose in degrees, and `speaking`, the probability that this face is the one
speaking (0 for every face outside voice activity; realtime/speaker.py). The step's `face` stays
the primary face (the speaker, else the largest), so subscribers that read only `face` see what
they saw before; `speaker` is the speaking face's id, or null.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from contract.message_fields import MessageError, _integer, _number
from contract.readout_messages import Expressions, FaceBaseline, _typed_or_none

MAX_FACES = 4  # faces a step carries at most (--max-faces 1..4)


@dataclass(frozen=True)
class HeadPose:
    """Degrees from the landmarks: yaw > 0 turns to the image's right, pitch > 0 tilts up,
    roll > 0 leans clockwise in the image."""

    yaw: float
    pitch: float
    roll: float

    def __post_init__(self) -> None:
        for name in ("yaw", "pitch", "roll"):
            _number(f"faces.pose.{name}", getattr(self, name), -180.0, 180.0)


@dataclass(frozen=True)
class PersonFace:
    id: int  # track id, from 1
    box: tuple[int, int, int, int]  # x, y, width, height in pixels of the source frame
    expressions: Expressions
    valence: float
    arousal: float
    quality: float
    speaking: float  # probability that this face is the step's speaker
    pose: HeadPose | None = None  # null without landmarks (the Haar fallback)
    baseline: FaceBaseline | None = None  # this person's own baseline; null until ready

    NESTED = {"expressions": Expressions, "pose": HeadPose, "baseline": FaceBaseline}

    def __post_init__(self) -> None:
        _integer("faces.id", self.id, 1)
        if not isinstance(self.box, (list, tuple)) or len(self.box) != 4:
            raise MessageError(f"faces.box must be [x, y, w, h], got {self.box!r:.60}")
        for name, value in zip(("x", "y", "w", "h"), self.box):
            _integer(f"faces.box.{name}", value, 0 if name in "xy" else 1)
        object.__setattr__(self, "box", tuple(self.box))
        if not isinstance(self.expressions, Expressions):
            raise MessageError("faces.expressions must be an Expressions record")
        _number("faces.valence", self.valence, -1.0, 1.0)
        _number("faces.arousal", self.arousal, -1.0, 1.0)
        _number("faces.quality", self.quality, 0.0, 1.0)
        _number("faces.speaking", self.speaking, 0.0, 1.0)
        _typed_or_none("faces.pose", self.pose, HeadPose)
        _typed_or_none("faces.baseline", self.baseline, FaceBaseline)


class FaceList:
    """The `faces` field's builder for contract.message_fields.build_record: a JSON list of
    PersonFace objects (at most MAX_FACES, ids distinct) -> a tuple of PersonFace."""

    NESTED = PersonFace.NESTED

    @staticmethod
    def build(name: str, value: Any, build_record: Any) -> tuple[PersonFace, ...]:
        if not isinstance(value, list):
            raise MessageError(f"{name} must be a list, got {type(value).__name__}")
        if len(value) > MAX_FACES:
            raise MessageError(f"{name} holds at most {MAX_FACES} faces, got {len(value)}")
        return tuple(build_record(PersonFace, f"{name}[{i}]", item, PersonFace.NESTED)
                     for i, item in enumerate(value))  # fmt: skip


def check_faces(faces: Any, speaker: Any) -> None:
    """The step's `faces` (None or a tuple of PersonFace) and `speaker` (None or one of their ids)."""
    if faces is not None:
        if not isinstance(faces, tuple) or not all(isinstance(f, PersonFace) for f in faces):
            raise MessageError("faces must be a list of face records or null")
        if len(faces) > MAX_FACES:
            raise MessageError(f"faces holds at most {MAX_FACES} faces, got {len(faces)}")
        ids = [f.id for f in faces]
        if len(set(ids)) != len(ids):
            raise MessageError(f"faces ids must be distinct, got {ids}")
    if speaker is not None:
        _integer("speaker", speaker, 1)
        if faces is not None and speaker not in {f.id for f in faces}:
            raise MessageError(f"speaker {speaker} is not among the step's faces")
