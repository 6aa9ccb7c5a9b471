"""Face features per video frame: Haar-cascade detection, then the expression network.

Rule: the largest detected face is the subject (a webcam user is usually the nearest face).
Features, in msrg.config order: the 7 EXPRESSION_LABELS probabilities, then FACE_GEOMETRY:
box centre x and y, width and height, each divided by the frame's width or height, and the
detection confidence. Without a face: present=False and all zeros.

Confidence: OpenCV's `detectMultiScale3(..., outputRejectLevels=True)` gives each detection the
summed weight of the cascade's final stage ("level weight", roughly 0 for a bare pass, 4-9 for
clear frontal faces). It is squashed to [0, 1) as `1 - exp(-weight / confidence_scale)`, so it
ranks detections and is monotone in the cascade's own evidence; it is not a calibrated probability.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from msrg.config import EXPRESSION_LABELS, FACE_GEOMETRY, LIVE_VISUAL_DIM
from realtime.extractors.expression_net import (
    INPUT_SIZE_PX,
    ExpressionModelError,
    ExpressionNet,
    ExpressionNetOptions,
    Expressions,
)
from realtime.stage import Stage
from realtime.types import FaceObservation, VideoFrame

assert len(EXPRESSION_LABELS) + len(FACE_GEOMETRY) == LIVE_VISUAL_DIM


@dataclass(frozen=True)
class FaceOptions:
    cascade_file: str = "haarcascade_frontalface_default.xml"  # inside cv2.data.haarcascades
    scale_factor: float = 1.2  # image pyramid step; 1.1 finds a few more faces at ~2x the cost
    min_neighbors: int = 3  # overlapping hits needed; 5 misses turned heads in carphone
    min_face_frac: float = 0.15  # smallest face side, as a fraction of the frame's shorter side
    detect_width_px: int = 320  # wider frames are downscaled to this before detection (speed)
    margin_frac: float = 0.1  # crop margin per side, as a fraction of the box side (like training)
    confidence_scale: float = 3.0  # level weight that maps to confidence 1 - 1/e
    # Tracking (FaceSampler): between full-frame detections, the cascade searches only around
    # the previous face, for faces of `1/track_size_ratio` to `track_size_ratio` times its side,
    # at the same detection scale as a full pass. The cascade's smallest windows over the whole
    # frame are most of its cost, so this costs a fraction of a full pass for about the same box.
    track_margin_frac: float = 0.3  # search region: the previous box plus this much per side
    track_size_ratio: float = 1.25  # (0.5 and 1.4: 2x the CPU, 95 % agreement, not 98 %)
    expression: ExpressionNetOptions = field(default_factory=ExpressionNetOptions)

    def __post_init__(self) -> None:
        if self.scale_factor <= 1.0:
            raise ValueError(f"scale_factor must be > 1, got {self.scale_factor}")
        if not 0.0 < self.min_face_frac <= 1.0:
            raise ValueError(f"min_face_frac must be in (0, 1], got {self.min_face_frac}")
        if self.detect_width_px < 64:
            raise ValueError(f"detect_width_px must be at least 64, got {self.detect_width_px}")
        if self.margin_frac < 0.0 or self.confidence_scale <= 0.0 or self.min_neighbors < 0:
            raise ValueError("margin_frac, min_neighbors must be >= 0 and confidence_scale > 0")
        if self.track_margin_frac < 0.0 or self.track_size_ratio <= 1.0:
            raise ValueError("track_margin_frac must be >= 0 and track_size_ratio > 1")


Box = tuple[int, int, int, int]  # (x, y, w, h) in pixels of the source frame


class FaceExtractor:
    """`process(frame) -> FaceObservation`. Stateless across frames; not thread-safe (one owner)."""

    def __init__(self, options: FaceOptions | None = None, net: Expressions | None = None) -> None:
        """net: the expression network to use (realtime.multi passes one shared by every
        stream, realtime/extractors/shared_expression.py); None loads one of its own."""
        self.options = options or FaceOptions()
        cascade_path = Path(cv2.data.haarcascades) / self.options.cascade_file
        self._cascade = cv2.CascadeClassifier(str(cascade_path))
        if self._cascade.empty():
            raise ExpressionModelError(
                f"face detector {cascade_path} could not be loaded; install "
                "`opencv-python-headless<5` (5.0 ships no cascade files)"
            )
        self._net = net if net is not None else ExpressionNet(self.options.expression)

    @property
    def net(self) -> Expressions:
        """The expression network (the multi-face analyser shares it)."""
        return self._net

    def detect(self, image: np.ndarray, near: Box | None = None) -> tuple[Box, float] | None:
        """Largest face in a (H, W, 3) BGR image and its confidence in [0, 1), or None.
        near: a face box from a recent frame; only faces around it, of about its size, are
        searched for (tracking; FaceSampler decides when a full search is due)."""
        o = self.options
        height, width = image.shape[:2]
        scale = min(1.0, o.detect_width_px / width)
        x0 = y0 = 0
        min_side = max(1, int(o.min_face_frac * min(height, width) * scale))
        max_size: tuple[int, int] = (0, 0)  # OpenCV: no upper bound
        if near is not None:
            nx, ny, nw, nh = near
            side = max(nw, nh)
            pad = round(o.track_margin_frac * side)
            x0, y0 = max(0, nx - pad), max(0, ny - pad)
            x1, y1 = min(width, nx + nw + pad), min(height, ny + nh + pad)
            if x1 - x0 < 24 or y1 - y0 < 24:
                return None
            image = image[y0:y1, x0:x1]
            min_side = max(min_side, int(side * scale / o.track_size_ratio))
            big = int(side * scale * o.track_size_ratio) + 1
            max_size = (big, big)
        small = image
        if scale < 1.0:
            # INTER_AREA averages pixels, so the downscale does not alias fine texture into edges.
            size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
            small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)  # (h, w) uint8
        boxes, _levels, weights = self._cascade.detectMultiScale3(
            grey, o.scale_factor, o.min_neighbors, minSize=(min_side, min_side),
            maxSize=max_size, outputRejectLevels=True,
        )
        if len(boxes) == 0:
            return None
        best = int(np.argmax([w * h for (_x, _y, w, h) in boxes]))
        x, y, w, h = (int(round(v / scale)) for v in boxes[best])
        weight = float(np.asarray(weights).ravel()[best])
        confidence = 1.0 - math.exp(-max(weight, 0.0) / o.confidence_scale)
        return (x + x0, y + y0, w, h), confidence

    def crop(self, image: np.ndarray, box: Box) -> np.ndarray:
        """(64, 64) uint8 grey crop of the box plus margin, clipped to the (H, W, 3) BGR image."""
        x, y, w, h = box
        margin = self.options.margin_frac
        margin_x, margin_y = round(margin * w), round(margin * h)
        x0, y0 = max(0, x - margin_x), max(0, y - margin_y)
        x1 = min(image.shape[1], x + w + margin_x)
        y1 = min(image.shape[0], y + h + margin_y)
        # Grey only the crop: much cheaper than converting the whole frame.
        grey = cv2.cvtColor(image[y0:y1, x0:x1], cv2.COLOR_BGR2GRAY)
        return cv2.resize(grey, (INPUT_SIZE_PX, INPUT_SIZE_PX), interpolation=cv2.INTER_AREA)

    def process(self, frame: VideoFrame, near: Box | None = None) -> FaceObservation:
        """near: track a face seen recently (see detect); None: search the whole frame."""
        image = frame.image  # (H, W, 3) uint8 BGR
        found = self.detect(image, near)
        if found is None:
            return FaceObservation(
                t_s=frame.t_s, present=False,
                features=np.zeros(LIVE_VISUAL_DIM, dtype=np.float32), box=None,
            )
        box, confidence = found
        probabilities = self._net.predict(self.crop(image, box)[None])[0]  # (7,)
        height, width = image.shape[:2]
        x, y, w, h = box
        geometry = np.array(
            [(x + w / 2) / width, (y + h / 2) / height, w / width, h / height, confidence],
            dtype=np.float32,
        )  # (5,) in FACE_GEOMETRY order
        features = np.concatenate([probabilities, geometry]).astype(np.float32)  # (12,)
        return FaceObservation(t_s=frame.t_s, present=True, features=features, box=box)


REDETECT_S = 1.0  # tracking: a full-frame search at most this far apart (new, moved faces)
FORGET_S = 3.0  # ... while a face was seen this recently; longer without one: full every time


class FaceSampler(Stage[VideoFrame]):
    """Face analysis at a fixed rate: the frames of each 1/rate_hz interval of stream time are
    analysed in order until one shows a face, and the interval's later frames reuse that
    analysis (rate 0: every frame). A step therefore still sees the face if any of its frames
    shows one; a detector miss costs one more analysis, and an empty room costs every frame, as
    before. Live and replay share it, so training features are the live features.

    Tracking: while a face was seen within `forget_s`, an analysis searches only around where it
    was last seen (FaceExtractor.detect's `near`), and a full-frame search runs once every
    `redetect_s` of stream time, so a face that moved away or a new one is found within that
    time; with no face for `forget_s`, every analysis is a full search again (redetect_s 0:
    always a full search). The cascade misses turned heads, and a full search would mostly miss
    them too, at several times the cost. One sampler per stream: a stage (realtime/stage.py)
    whose push answers every frame, so flush owes nothing; it closes nothing either, as the face
    extractor it was handed is shared."""

    def __init__(
        self, face: FaceExtractor, rate_hz: float, redetect_s: float = REDETECT_S,
        forget_s: float = FORGET_S,
    ) -> None:  # fmt: skip
        if not (math.isfinite(rate_hz) and rate_hz >= 0):
            raise ValueError(f"face analysis rate must be >= 0, got {rate_hz}")
        if not (math.isfinite(redetect_s) and redetect_s >= 0 and forget_s >= 0):
            raise ValueError(f"face redetect/forget times must be >= 0 s, got {redetect_s}, "
                             f"{forget_s}")  # fmt: skip
        self.face = face
        self.rate_hz = rate_hz
        self.redetect_s = redetect_s
        self.forget_s = forget_s
        self.analysed = 0  # frames actually analysed (kept across streams, like a counter)
        self.tracked = 0  # of those, analysed by searching around the last face seen only
        self.reset()

    def reset(self) -> None:
        self._held: FaceObservation | None = None
        self._held_slot: int | None = None
        self._full_at_s = -math.inf  # stream time of the last full-frame search
        self._box: Box | None = None  # the face last seen, to search around
        self._seen_s = -math.inf  # when it was seen

    def flush(self) -> None:
        """Every frame was answered when pushed: nothing is owed."""
        return None

    def push(self, frame: VideoFrame) -> FaceObservation:
        slot = math.floor(frame.t_s * self.rate_hz + 1e-9) if self.rate_hz > 0 else None
        held = self._held
        if held is not None and held.present and slot is not None and slot == self._held_slot:
            return replace(held, t_s=frame.t_s)
        self._held, self._held_slot = self._analyse(frame), slot
        self.analysed += 1
        return self._held

    def _analyse(self, frame: VideoFrame) -> FaceObservation:
        t_s = frame.t_s
        recent = 0 <= t_s - self._full_at_s < self.redetect_s
        if self._box is not None and recent and 0 <= t_s - self._seen_s < self.forget_s:
            self.tracked += 1
            found = self.face.process(frame, near=self._box)
        else:
            self._full_at_s = t_s
            found = self.face.process(frame)
        if found.present:
            self._box, self._seen_s = found.box, t_s
        return found
