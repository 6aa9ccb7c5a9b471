"""Check the face readout against annotated face images.

    python -m lab.evaluate_faces --images DIR [--json OUT.json]

DIR holds one folder per expression, named as CK+ names them (anger, contempt, disgust, fear,
happy, sadness, surprise, neutral; FER2013's own names are taken too). Each image is placed in a
camera-sized frame (upscaled so the face is a webcam face's size, on a mid-grey background) and
read as the live path reads a frame: the face detector, the crop, the expression network
(realtime/extractors/face.py), then the readout (realtime/readouts.py: face_readout). Reported:

- n: images read; no_face: images in which no face was found (listed, and counted wrong);
- accuracy: the top expression against the folder, over the classes the network has (CK+'s
  contempt is not one of FER2013's seven: left out);
- valence_sign_accuracy: the readout's valence sign against the sign of the class's point in the
  circumplex (contract/readout_messages.py: CIRCUMPLEX), over classes of non-zero valence;
- a confusion matrix (rows: folder, columns: top expression, plus "no face").
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

from contract.readout_messages import CIRCUMPLEX, EXPRESSION_LABELS

# folder name -> the network's label (None: a class the network does not have)
FOLDERS = {"anger": "angry", "angry": "angry", "contempt": None, "disgust": "disgust",
           "fear": "fear", "happy": "happy", "happiness": "happy", "sadness": "sad", "sad": "sad",
           "surprise": "surprise", "neutral": "neutral"}  # fmt: skip
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
FRAME = (480, 640)  # a webcam frame, (height, width)
FACE_SIDE = 240  # the image's side in the frame: a face at arm's length from a webcam


def place_in_frame(image: np.ndarray) -> np.ndarray:
    """(H, W) grey or (H, W, 3) BGR image, upscaled to FACE_SIDE, centred on a grey BGR frame."""
    import cv2

    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    scale = FACE_SIDE / max(image.shape[:2])
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    image = cv2.resize(image, size, interpolation=cv2.INTER_CUBIC)
    frame = np.full((*FRAME, 3), 128, np.uint8)
    y, x = (FRAME[0] - image.shape[0]) // 2, (FRAME[1] - image.shape[1]) // 2
    frame[y : y + image.shape[0], x : x + image.shape[1]] = image
    return frame


def find_images(root: Path) -> tuple[list[tuple[Path, str]], list[str]]:
    """(image, folder) pairs, and the folders not named as an expression."""
    images, unknown = [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        name = folder.name.lower()
        if name not in FOLDERS:
            unknown.append(folder.name)
            continue
        images += [(p, name) for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
    return images, unknown


def evaluate(images: list[tuple[Path, str]]) -> dict:
    import cv2

    from realtime.extractors.face import FaceExtractor
    from realtime.readouts import face_readout
    from realtime.types import VideoFrame

    face = FaceExtractor()
    columns = [*EXPRESSION_LABELS, "no face"]
    folders = sorted({f for _, f in images})
    confusion = {f: dict.fromkeys(columns, 0) for f in folders}
    correct, scored, sign_right, sign_scored, no_face, unreadable = 0, 0, 0, 0, [], []
    for i, (path, folder) in enumerate(images):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            unreadable.append(str(path))
            continue
        obs = face.process(VideoFrame(i, i / 10.0, place_in_frame(image)))
        label = FOLDERS[folder]
        truth_valence = CIRCUMPLEX[label][0] if label else 0.0
        if not obs.present:
            no_face.append(str(path))
            confusion[folder]["no face"] += 1
            scored += label is not None
            sign_scored += truth_valence != 0
            continue
        expressions, valence, _arousal, _quality = face_readout(obs.features)
        probs = np.array([getattr(expressions, name) for name in EXPRESSION_LABELS])
        top = EXPRESSION_LABELS[int(np.argmax(probs))]
        confusion[folder][top] += 1
        if label is not None:
            scored += 1
            correct += top == label
        if truth_valence != 0:
            sign_scored += 1
            sign_right += valence != 0 and math.copysign(1, valence) == math.copysign(1, truth_valence)
    return {
        "n": len(images) - len(unreadable),
        "no_face": len(no_face),
        "accuracy": correct / scored if scored else None,
        "n_accuracy": scored,
        "valence_sign_accuracy": sign_right / sign_scored if sign_scored else None,
        "n_valence": sign_scored,
        "confusion": confusion,
        "no_face_images": no_face,
        "unreadable": unreadable,
    }


def format_report(report: dict) -> str:
    acc, val = report["accuracy"], report["valence_sign_accuracy"]
    lines = [
        f"images {report['n']}, no face found in {report['no_face']}",
        f"accuracy (top expression, {report['n_accuracy']} images): "
        + ("-" if acc is None else f"{acc:.3f}"),
        f"valence sign accuracy ({report['n_valence']} images): "
        + ("-" if val is None else f"{val:.3f}"),
        "confusion (rows: folder; columns: top expression):",
    ]
    cols = [*EXPRESSION_LABELS, "no face"]
    lines.append(f"{'':>10}" + "".join(f"{c[:8]:>9}" for c in cols))
    for folder, row in report["confusion"].items():
        lines.append(f"{folder:>10}" + "".join(f"{row[c]:>9}" for c in cols))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lab.evaluate_faces", description=__doc__.splitlines()[0])
    p.add_argument("--images", required=True, type=Path, help="one folder per expression")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    if not args.images.is_dir():
        print(f"error: --images {args.images} is not a folder", file=sys.stderr)
        return 2
    images, unknown = find_images(args.images)
    if not images:
        names = ", ".join(sorted(set(FOLDERS)))
        print(f"error: {args.images} has no images in folders named {names}", file=sys.stderr)
        return 2
    from realtime.extractors.expression_net import ExpressionModelError

    try:
        report = evaluate(images)
    except ExpressionModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report["images"] = str(args.images)
    report["folders_left_out"] = unknown
    print(format_report(report))
    if unknown:
        print(f"left out folder(s) not named as an expression: {', '.join(unknown)}")
    if report["no_face_images"]:
        print("no face found in: " + ", ".join(Path(p).name for p in report["no_face_images"][:10])
              + (" ..." if len(report["no_face_images"]) > 10 else ""))  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
