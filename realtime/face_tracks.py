"""Face tracks with ids: the same id while a person stays in view and when they come back soon.

`FaceTracker.update(t_s, faces, image) -> list[(id, DetectedFace)]`, one call per analysed frame.

How (docs/faces.md):
1. In view: a detection continues the track whose last box overlaps it most (IoU >= `iou_min`),
   among tracks seen within `hold_s`; greedy, highest overlap first. Face Mesh's own tracking keeps
   boxes of consecutive frames close, so this carries ids through ordinary motion.
2. Coming back: a detection that continues no track is compared with the appearance of every
   track not matched in this frame and seen within `return_s` (default 5 s): a local binary
   pattern (LBP) histogram of its grey crop, 4x4 cells of 256 codes, square-rooted, centred,
   unit length. The most similar one at cosine >= `similarity_min` gives back its id.
3. Otherwise a new id (1, 2, 3, ... in order of first appearance; never reused).

Limits: the appearance cue is texture, not identity: on the CK+ crops, images of the same subject
score a median 0.83 (5th percentile 0.78) and different subjects a median 0.73 (95th percentile
0.78, 99th 0.80), so the 0.80 threshold gives most returns their id and about 1 % of strangers an
old one; lighting changes, a turned head or a much larger or smaller face lower the similarity of a
returning person (then a new id). Two people who cross paths can swap ids when their boxes overlap.
A person away longer than `return_s` gets a new id.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from realtime.extractors.face_mesh import Box, DetectedFace

_NEIGHBOURS = ((-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1))


def appearance(image: np.ndarray, box: Box) -> np.ndarray:
    """(4096,) float32 unit vector: LBP histograms of the box's grey crop (see module doc)."""
    x, y, w, h = box
    crop = image[max(0, y) : y + h, max(0, x) : x + w]
    if crop.ndim == 3:
        crop = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    g = cv2.resize(crop, (62, 62), interpolation=cv2.INTER_AREA).astype(np.int16)
    centre = g[1:-1, 1:-1]
    code = np.zeros_like(centre)
    for bit, (dy, dx) in enumerate(_NEIGHBOURS):
        code |= (g[1 + dy : 61 + dy, 1 + dx : 61 + dx] >= centre).astype(np.int16) << bit
    cells = [
        np.bincount(code[i : i + 15, j : j + 15].ravel(), minlength=256)
        for i in range(0, 60, 15) for j in range(0, 60, 15)
    ]  # fmt: skip
    v = np.sqrt(np.concatenate(cells).astype(np.float32))
    v -= v.mean()
    return v / max(float(np.linalg.norm(v)), 1e-6)


def iou(a: Box, b: Box) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = w * h
    return inter / float(aw * ah + bw * bh - inter) if inter else 0.0


@dataclass
class Track:
    id: int
    box: Box
    look: np.ndarray  # running appearance (unit vector)
    first_s: float
    seen_s: float


class FaceTracker:
    def __init__(self, iou_min: float = 0.3, hold_s: float = 0.5, return_s: float = 5.0,
                 similarity_min: float = 0.80, look_rate: float = 0.1) -> None:  # fmt: skip
        if not (0 < iou_min <= 1 and 0 <= hold_s <= return_s and -1 <= similarity_min <= 1):
            raise ValueError("iou_min in (0, 1], 0 <= hold_s <= return_s, similarity in [-1, 1]")
        self.iou_min, self.hold_s, self.return_s = iou_min, hold_s, return_s
        self.similarity_min, self.look_rate = similarity_min, look_rate
        self.tracks: dict[int, Track] = {}
        self._next_id = 1

    def reset(self) -> None:
        self.tracks.clear()
        self._next_id = 1

    def update(self, t_s: float, faces: list[DetectedFace],
               image: np.ndarray) -> list[tuple[int, DetectedFace]]:  # fmt: skip
        for tid in [k for k, tr in self.tracks.items() if t_s - tr.seen_s > self.return_s]:
            del self.tracks[tid]
        looks = [appearance(image, f.box) for f in faces]
        assigned: dict[int, int] = {}  # detection index -> track id
        new: set[int] = set()
        near = [tr for tr in self.tracks.values() if t_s - tr.seen_s <= self.hold_s]
        pairs = sorted(
            ((iou(f.box, tr.box), i, tr.id) for i, f in enumerate(faces) for tr in near),
            reverse=True,
        )
        for overlap, i, tid in pairs:
            if overlap < self.iou_min:
                break
            if i not in assigned and tid not in assigned.values():
                assigned[i] = tid
        for i in range(len(faces)):
            if i in assigned:
                continue
            free = [tr for tr in self.tracks.values() if tr.id not in assigned.values()]
            scored = [(float(looks[i] @ tr.look), tr.id) for tr in free]
            best = max(scored, default=(-2.0, None))
            if best[1] is not None and best[0] >= self.similarity_min:
                assigned[i] = best[1]
            else:
                assigned[i] = self._next_id
                new.add(self._next_id)
                self.tracks[self._next_id] = Track(self._next_id, faces[i].box, looks[i], t_s,
                                                   t_s)  # fmt: skip
                self._next_id += 1
        out = []
        for i, face in enumerate(faces):
            track = self.tracks[assigned[i]]
            if track.id not in new:
                look = (1 - self.look_rate) * track.look + self.look_rate * looks[i]
                track.look = look / max(float(np.linalg.norm(look)), 1e-6)
            track.box, track.seen_s = face.box, t_s
            out.append((track.id, face))
        return out
