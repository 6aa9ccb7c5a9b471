"""The evaluation commands on real annotated recordings: lab.evaluate_speech on RAVDESS clips of
an actor the model and the readouts never learned from, lab.evaluate_faces on CK+ images and on
an image without a face, and their one-line refusals."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lab.speech_labels import ravdess_clip, write_speech_labels

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
RAVDESS, CKPLUS = SHARED / "emotion-speech" / "ravdess", SHARED / "faces" / "ckplus48"
ACTOR = "16"  # a dev actor: never trained on


def _run(module: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=900)  # fmt: skip


@pytest.fixture(scope="module")
def speech_report(tmp_path_factory) -> dict:
    if not RAVDESS.is_dir():
        pytest.skip("RAVDESS is not in ../shared/data")
    tmp = tmp_path_factory.mktemp("speech")
    names = [f"03-01-{e}-02-01-01-{ACTOR}.flac" for e in ("03", "04", "05", "02")]
    clips = [ravdess_clip(RAVDESS / f"Actor_{ACTOR}" / n, dev_speakers=[ACTOR]) for n in names]
    write_speech_labels(tmp / "labels.csv", clips)
    run = _run("lab.evaluate_speech", "--checkpoint", "msrg/weights/msrg-live.pt", "--labels",
               str(tmp / "labels.csv"), "--json", str(tmp / "out.json"), "--workers", "1",
               "--cache", str(tmp / "cache"))  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    assert "voice arousal AUC" in run.stdout  # the table
    return json.loads((tmp / "out.json").read_text())


@pytest.mark.slow
def test_speech_report_shape_and_readouts(speech_report: dict) -> None:
    assert set(speech_report["corpora"]) == {"ravdess"}
    for group in (speech_report["corpora"]["ravdess"], speech_report["all"]):
        assert group["n"] == 4 and group["n_signed"] == 4
        for key in ("sim_final_sign_accuracy", "voice_arousal_auc", "voice_valence_sign_accuracy"):
            assert key in group
        assert group["voice_valence_sign_accuracy"] is None  # no voice valence shipped
    emotions = speech_report["all"]["by_emotion"]
    # strong angry reads more aroused than strong sad and strong calm
    assert emotions["angry"]["mean_voice_arousal"] > emotions["sad"]["mean_voice_arousal"]
    assert emotions["angry"]["mean_voice_arousal"] > emotions["calm"]["mean_voice_arousal"]
    assert speech_report["all"]["voice_arousal_auc"] == 1.0  # angry, happy above sad, calm


def test_speech_labels_refused_in_one_line(tmp_path: Path) -> None:
    run = _run("lab.evaluate_speech", "--checkpoint", "msrg/weights/msrg-live.pt", "--labels",
               str(tmp_path / "none.csv"))  # fmt: skip
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [f"error: labels file {tmp_path / 'none.csv'} does not exist"]


@pytest.fixture(scope="module")
def faces_report(tmp_path_factory) -> dict:
    if not CKPLUS.is_dir():
        pytest.skip("CK+ is not in ../shared/data")
    root = tmp_path_factory.mktemp("faces")
    for folder in ("happy", "surprise", "sadness", "contempt"):
        (root / folder).mkdir()
        for image in sorted((CKPLUS / folder).iterdir())[:3]:
            shutil.copy(image, root / folder / image.name)
    import cv2

    (root / "happy" / "blank.png").write_bytes(cv2.imencode(".png", np.full((48, 48), 128, np.uint8))[1])
    (root / "notes").mkdir()
    run = _run("lab.evaluate_faces", "--images", str(root), "--json", str(root / "out.json"))
    assert run.returncode == 0, run.stderr[-2000:]
    assert "left out folder(s) not named as an expression: notes" in run.stdout
    return json.loads((root / "out.json").read_text())


def test_faces_report(faces_report: dict) -> None:
    assert faces_report["n"] == 13
    assert faces_report["no_face"] == 1 and faces_report["no_face_images"][0].endswith("blank.png")
    assert faces_report["n_accuracy"] == 10  # contempt is not one of the network's classes
    assert faces_report["confusion"]["happy"]["happy"] >= 2  # real smiles read as happy
    assert faces_report["confusion"]["happy"]["no face"] == 1
    assert faces_report["valence_sign_accuracy"] >= 0.6
    assert sum(faces_report["confusion"]["contempt"].values()) == 3


def test_face_folder_refused_in_one_line(tmp_path: Path) -> None:
    run = _run("lab.evaluate_faces", "--images", str(tmp_path))
    assert run.returncode == 2 and len(run.stderr.strip().splitlines()) == 1
    assert "has no images in folders named" in run.stderr
