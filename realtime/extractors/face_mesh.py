"""Several faces per frame: mediapipe's BlazeFace detector and Face Mesh landmarks, with the Haar
cascade (realtime/extractors/face.py) as the logged fallback when mediapipe is not installed.

`MultiFaceDetector(max_faces).detect(image) -> list[DetectedFace]`, largest first. With
mediapipe, each face carries its 468 Face Mesh landmarks (pixels of the source frame), from which
come its box, head pose (`head_pose`: yaw, pitch, roll in degrees) and mouth opening
(`mouth_opening`: inner-lip gap over mouth width). The Haar fallback gives boxes only (no pose,
no mouth opening: those readouts are then absent, and who is speaking cannot be told).

Why mediapipe (benchmarks/face_detectors.py, docs/faces.md): on the carphone clip at 640x480 it
found the face in more frames than the cascade at a fraction of its time, and on composed frames
of several CK+ faces it found more of them; Face Mesh in video mode re-runs the detector only
while fewer than `max_faces` faces are tracked.

mediapipe 0.10.21 is installed `--no-deps` (scripts/setup.sh): it asks for protobuf<5 and numpy<2
but runs with the project's protobuf 6 (onnx needs >= 6.31) and numpy 2; 0.10.14 does not (its
packet getter calls protobuf's removed GetPrototype).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import cv2
import numpy as np

log = logging.getLogger(__name__)

MAX_FACES_LIMIT = 4  # what the wire format, the LSL layout and the dashboard are laid out for

# Face Mesh landmark indices (mediapipe's canonical topology).
NOSE_TIP, CHIN, LEFT_EYE_OUT, RIGHT_EYE_OUT, MOUTH_LEFT, MOUTH_RIGHT = 1, 152, 263, 33, 291, 61
UPPER_LIP_IN, LOWER_LIP_IN = 13, 14
# A generic head in millimetres (x right, y up, z towards the camera), the usual six-point model
# for solvePnP head pose: nose tip, chin, eye outer corners, mouth corners.
_MODEL_POINTS = np.array([
    (0.0, 0.0, 0.0), (0.0, -63.6, -12.5), (43.3, 32.7, -26.0), (-43.3, 32.7, -26.0),
    (28.9, -28.9, -24.1), (-28.9, -28.9, -24.1),
], dtype=np.float64)  # fmt: skip
_POSE_IDS = (NOSE_TIP, CHIN, LEFT_EYE_OUT, RIGHT_EYE_OUT, MOUTH_LEFT, MOUTH_RIGHT)

Box = tuple[int, int, int, int]  # (x, y, w, h) in pixels of the source frame


@dataclass(frozen=True)
class DetectedFace:
    box: Box
    confidence: float  # detector's score in [0, 1] (Face Mesh: 1.0 for a tracked face)
    landmarks: np.ndarray | None  # (468, 2) float32 pixels, None from the Haar fallback

    @property
    def area(self) -> int:
        return self.box[2] * self.box[3]


def mediapipe_available() -> bool:
    try:
        import mediapipe  # noqa: F401
    except ImportError:
        return False
    return True


def parse_max_faces(text: str) -> int:
    """--max-faces: an integer 1..MAX_FACES_LIMIT; anything else raises ValueError (one line)."""
    try:
        value = int(str(text).strip())
    except ValueError:
        raise ValueError(f"--max-faces must be a whole number from 1 to {MAX_FACES_LIMIT}, "
                         f"got {text!r}") from None  # fmt: skip
    if not 1 <= value <= MAX_FACES_LIMIT:
        raise ValueError(f"--max-faces must be from 1 to {MAX_FACES_LIMIT}, got {value}")
    return value


def head_pose(landmarks: np.ndarray, frame_size: tuple[int, int]) -> dict[str, float]:
    """Yaw, pitch, roll in degrees from six Face Mesh landmarks by solvePnP against a generic
    head, with a pinhole camera of focal length = frame width (no calibration). Yaw > 0: the
    face turns to the image's right; pitch > 0: it tilts up; roll > 0: it leans clockwise in
    the image. Accurate to a few degrees near frontal, coarser past ~45 degrees of yaw."""
    width, height = frame_size
    image_points = landmarks[list(_POSE_IDS), :2].astype(np.float64)
    camera = np.array([[width, 0, width / 2], [0, width, height / 2], [0, 0, 1]], np.float64)
    # The model's y is up and the image's is down: flip the model so solvePnP sees one frame.
    model = _MODEL_POINTS * np.array([1.0, -1.0, -1.0])
    ok, rvec, _tvec = cv2.solvePnP(model, image_points, camera, None,
                                   flags=cv2.SOLVEPNP_ITERATIVE)  # fmt: skip
    if not ok:
        return {"yaw": 0.0, "pitch": 0.0, "roll": 0.0}
    rot, _ = cv2.Rodrigues(rvec)
    # Euler angles (x: pitch, y: yaw, z: roll) of R = Rz Ry Rx.
    sy = math.hypot(rot[0, 0], rot[1, 0])
    pitch = math.degrees(math.atan2(rot[2, 1], rot[2, 2]))
    yaw = math.degrees(math.atan2(-rot[2, 0], sy))
    roll = math.degrees(math.atan2(rot[1, 0], rot[0, 0]))
    pitch = (pitch + 180.0) % 360.0 - 180.0
    return {"yaw": round(-yaw, 2), "pitch": round(-pitch, 2), "roll": round(roll, 2)}


def mouth_opening(landmarks: np.ndarray) -> float:
    """Inner-lip gap over mouth width (0 closed, ~0.5 wide open): independent of face size."""
    gap = float(np.linalg.norm(landmarks[UPPER_LIP_IN] - landmarks[LOWER_LIP_IN]))
    width = float(np.linalg.norm(landmarks[MOUTH_LEFT] - landmarks[MOUTH_RIGHT]))
    return gap / width if width > 1e-6 else 0.0


class MultiFaceDetector:
    """Up to `max_faces` faces per (H, W, 3) BGR frame, largest first. Not thread-safe; in video
    mode (static=False) frames must come in stream order (Face Mesh tracks between them)."""

    def __init__(self, max_faces: int = MAX_FACES_LIMIT, static: bool = False,
                 backend: str = "auto", min_confidence: float = 0.5) -> None:  # fmt: skip
        if not 1 <= max_faces <= MAX_FACES_LIMIT:
            raise ValueError(f"max_faces must be from 1 to {MAX_FACES_LIMIT}, got {max_faces}")
        if backend not in ("auto", "mediapipe", "haar"):
            raise ValueError(f"face backend must be auto, mediapipe or haar, got {backend!r}")
        self.max_faces = max_faces
        self.fallback_reason: str | None = None  # set when the Haar fallback is in use
        if backend == "auto" and not mediapipe_available():
            backend = "haar"
            self.fallback_reason = ("mediapipe is not installed: Haar cascade faces (no "
                                    "landmarks, head pose or speaker)")  # fmt: skip
            log.warning("face detector: %s", self.fallback_reason)
        self.backend = "mediapipe" if backend == "auto" else backend
        if self.backend == "mediapipe":
            import mediapipe as mp

            self._mesh = mp.solutions.face_mesh.FaceMesh(
                static_image_mode=static, max_num_faces=max_faces, refine_landmarks=False,
                min_detection_confidence=min_confidence, min_tracking_confidence=min_confidence,
            )
        else:
            cascade = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
            self._cascade = cv2.CascadeClassifier(cascade)

    def detect(self, image: np.ndarray) -> list[DetectedFace]:
        if self.backend == "mediapipe":
            faces = self._detect_mesh(image)
        else:
            faces = self._detect_haar(image)
        faces.sort(key=lambda f: -f.area)
        return faces[: self.max_faces]

    def _detect_mesh(self, image: np.ndarray) -> list[DetectedFace]:
        height, width = image.shape[:2]
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        result = self._mesh.process(rgb)
        faces = []
        for face in result.multi_face_landmarks or ():
            points = np.array([(p.x * width, p.y * height) for p in face.landmark], np.float32)
            x0, y0 = np.maximum(points.min(axis=0), 0)
            x1, y1 = np.minimum(points.max(axis=0), (width - 1, height - 1))
            if x1 - x0 < 4 or y1 - y0 < 4:
                continue
            box = (int(x0), int(y0), int(round(x1 - x0)), int(round(y1 - y0)))
            faces.append(DetectedFace(box, 1.0, points))
        return faces

    def _detect_haar(self, image: np.ndarray) -> list[DetectedFace]:
        height, width = image.shape[:2]
        scale = min(1.0, 320 / width)
        small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
        side = max(1, int(0.1 * min(grey.shape)))
        boxes, _levels, weights = self._cascade.detectMultiScale3(
            grey, 1.2, 3, minSize=(side, side), outputRejectLevels=True)
        faces = []
        for (x, y, w, h), weight in zip(boxes, np.asarray(weights).ravel()):
            box = tuple(int(round(v / scale)) for v in (x, y, w, h))
            faces.append(DetectedFace(box, 1.0 - math.exp(-max(float(weight), 0.0) / 3.0), None))
        return faces

    def close(self) -> None:
        if self.backend == "mediapipe":
            self._mesh.close()
