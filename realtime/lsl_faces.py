"""The LSL per-face layout (issue 33): the `<name>-faces` stream, one float32 sample per final
step, beside the Affect stream (whose 27 channels stay as they were).

Channels (docs/lsl.md): `speaker_id`, then four slots of FACE_SLOT_FIELDS each, `face1_id`,
`face1_x`, ..., `face4_roll` (77 in all). A slot keeps its person: a face id takes the lowest
free slot when first seen and holds it while it is seen again within `hold_steps` steps (5 s at
10 Hz, as long as a track id is kept for a returning person); after that, or when four other
people need the slots, it is given to a newcomer. An empty slot, a face without a pose (the Haar
fallback) and a step without a speaker are NaN, never 0.
"""

from __future__ import annotations

import math

from contract import messages

SLOTS = messages.MAX_FACES  # 4
FACE_SLOT_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("id", "track id", "FaceId"),
    ("x", "pixels", "FaceBox"), ("y", "pixels", "FaceBox"),
    ("w", "pixels", "FaceBox"), ("h", "pixels", "FaceBox"),
    *((k, "probability", "FaceExpression") for k in messages.EXPRESSION_LABELS),
    ("valence", "circumplex (-1..1)", "FaceValence"),
    ("arousal", "circumplex (-1..1)", "FaceArousal"),
    ("quality", "score (0..1)", "FaceQuality"),
    ("speaking", "probability", "FaceSpeaking"),
    ("yaw", "degrees", "HeadPose"), ("pitch", "degrees", "HeadPose"),
    ("roll", "degrees", "HeadPose"),
)  # fmt: skip
FACE_CHANNELS: tuple[tuple[str, str, str], ...] = (
    ("speaker_id", "track id", "Speaker"),
    *((f"face{s}_{name}", unit, kind) for s in range(1, SLOTS + 1)
      for name, unit, kind in FACE_SLOT_FIELDS),
)  # fmt: skip


class FaceSlots:
    """Face id -> slot, kept per person (see the module doc)."""

    def __init__(self, slots: int = SLOTS, hold_steps: int = 50) -> None:
        self.hold_steps = hold_steps
        self._ids: list[int | None] = [None] * slots
        self._seen: list[int] = [-(10**9)] * slots

    def assign(self, seq: int, ids: list[int]) -> list[int | None]:
        """The id shown in each slot at step `seq` (None: empty)."""
        present = set(ids)
        for i, fid in enumerate(self._ids):
            if fid is not None and (fid in present):
                self._seen[i] = seq
            elif fid is not None and seq - self._seen[i] > self.hold_steps:
                self._ids[i] = None
        for fid in ids:
            if fid in self._ids:
                continue
            free = [i for i, f in enumerate(self._ids) if f is None]
            if not free:  # the slot of the person away longest
                free = sorted((i for i, f in enumerate(self._ids) if f not in present),
                              key=lambda i: self._seen[i])  # fmt: skip
            if free:
                self._ids[free[0]], self._seen[free[0]] = fid, seq
        return [fid if fid in present else None for fid in self._ids]


def faces_sample(msg: messages.StepMessage, slots: FaceSlots) -> list[float]:
    """One `<name>-faces` sample, in FACE_CHANNELS order."""
    by_id = {f.id: f for f in msg.faces or ()}
    out = [math.nan if msg.speaker is None else float(msg.speaker)]
    for fid in slots.assign(msg.seq, list(by_id)):
        f = by_id.get(fid) if fid is not None else None
        if f is None:
            out += [math.nan] * len(FACE_SLOT_FIELDS)
            continue
        pose = [math.nan] * 3 if f.pose is None else [f.pose.yaw, f.pose.pitch, f.pose.roll]
        out += [float(f.id), *map(float, f.box),
                *(getattr(f.expressions, k) for k in messages.EXPRESSION_LABELS),
                f.valence, f.arousal, f.quality, f.speaking, *pose]  # fmt: skip
    return out
