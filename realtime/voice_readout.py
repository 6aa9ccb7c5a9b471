"""The voice's own arousal (and, where it was shown to work, valence), fitted on real actors.

A step's readout is a linear function of its 25 eGeMAPSv02 low-level descriptor means (the
step's `audio`, the features the model reads), each standardised with the training actors' mean
and standard deviation:

    arousal = clip(b + w . z, -1, 1)                     (ridge regression)
    valence = 2 sigmoid(b_v + w_v . z) - 1               (logistic regression; only if fitted)

The weights, the standardisation and what they were fitted and checked on are in
`voice_readout.json` beside this module, written by `python -m lab.fit_voice_readout` under the
rule in docs/eval/voice-readout-rule.md. Arousal is in the norm's units (Russell & Mehrabian's
-1..1, lab/emotion_targets.py). The level of the voice shifts the absolute value with the
microphone's gain and the speaker; the baseline-relative values (realtime/baseline.py) remove both.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEFAULT_PATH = Path(__file__).with_name("voice_readout.json")
DIM = 25  # eGeMAPSv02 low-level descriptors


class VoiceReadoutError(ValueError):
    """A voice readout file that is missing or malformed; one line."""


@dataclass(frozen=True)
class VoiceReadoutModel:
    path: Path
    mean: np.ndarray  # (25,)
    std: np.ndarray  # (25,)
    arousal_w: np.ndarray  # (25,)
    arousal_b: float
    valence_w: np.ndarray | None  # (25,) or None: no voice valence
    valence_b: float
    info: dict  # what it was fitted and checked on

    @property
    def has_valence(self) -> bool:
        return self.valence_w is not None

    def _z(self, audio: np.ndarray) -> np.ndarray:
        x = np.asarray(audio, np.float64)[:DIM]
        return np.nan_to_num((x - self.mean) / self.std, nan=0.0, posinf=0.0, neginf=0.0)

    def arousal(self, audio: np.ndarray) -> float:
        return float(np.clip(self.arousal_b + self.arousal_w @ self._z(audio), -1.0, 1.0))

    def valence(self, audio: np.ndarray) -> float | None:
        if self.valence_w is None:
            return None
        score = float(np.clip(self.valence_b + self.valence_w @ self._z(audio), -50.0, 50.0))
        return 2.0 / (1.0 + math.exp(-score)) - 1.0


def _vector(blob: dict, key: str, path: Path) -> np.ndarray:
    value = np.asarray(blob.get(key, ()), np.float64)
    if value.shape != (DIM,) or not np.all(np.isfinite(value)):
        raise VoiceReadoutError(f"voice readout {path}: '{key}' must be {DIM} finite numbers")
    return value


@functools.lru_cache(maxsize=4)
def _load(path: Path) -> VoiceReadoutModel:
    try:
        blob = json.loads(path.read_text())
    except FileNotFoundError:
        raise VoiceReadoutError(
            f"voice readout {path} does not exist; reinstall the package or fit one with "
            "python -m lab.fit_voice_readout"
        ) from None
    except (OSError, ValueError) as exc:
        raise VoiceReadoutError(f"voice readout {path} is not readable JSON ({exc})") from None
    std = _vector(blob, "std", path)
    if np.any(std <= 0):
        raise VoiceReadoutError(f"voice readout {path}: 'std' must be positive")
    arousal, valence = blob.get("arousal") or {}, blob.get("valence")
    return VoiceReadoutModel(
        path, _vector(blob, "mean", path), std, _vector(arousal, "weights", path),
        float(arousal.get("bias", 0.0)),
        None if valence is None else _vector(valence, "weights", path),
        0.0 if valence is None else float(valence.get("bias", 0.0)),
        blob.get("fitted", {}),
    )  # fmt: skip


def load_voice_readout(path: str | Path | None = None) -> VoiceReadoutModel:
    """The fitted readout at `path` (default: the shipped one), read once per path."""
    return _load(Path(path) if path else DEFAULT_PATH)
