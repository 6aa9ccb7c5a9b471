"""The per-person baseline: readouts relative to the person's own first `baseline_s` seconds.

Pure: no threads, no I/O, no clock; the caller feeds each step's readouts once, in step order.

Statistic: for each readout, the median and the MAD (median absolute deviation from the median,
times 1.4826 so that it estimates the standard deviation of normally distributed values) of the
values of the first `baseline_s` seconds with a face (face readouts) or with speech (voice
readouts); each modality freezes its own baseline when it has seen that much. A relative value is
the robust z-score `(x - median) / max(1.4826 * MAD, floor)`, clipped to [-Z_LIMIT, Z_LIMIT]; the
floor (SCALE_FLOOR, in the readout's own unit) keeps a near-constant baseline (a still face, a
monotone voice) from turning noise into huge z-scores. A frozen baseline, not a running one: a
long session's mood must not drift into its own reference, and a recording's baseline (saved as
JSON, `to_json`) gives a replay the same reference (`from_json`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from contract.readout_messages import Z_LIMIT

MAD_TO_SD = 1.4826  # 1 / Phi^-1(3/4): MAD -> standard deviation for normal data
FACE_KEYS = ("valence", "arousal")
VOICE_KEYS = ("loudness", "pitch", "pitch_variability", "arousal")
KEYS = {"face": FACE_KEYS, "voice": VOICE_KEYS}
# Smallest scale per readout (its own unit): below it, differences are within measurement noise.
SCALE_FLOOR = {"valence": 0.05, "arousal": 0.05, "loudness": 0.05, "pitch": 0.5,
               "pitch_variability": 0.25}  # fmt: skip
FILE_KIND = "affect-monitor baseline"
FILE_VERSION = 1


def median(values: list[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    mid = n // 2
    return ordered[mid] if n % 2 else 0.5 * (ordered[mid - 1] + ordered[mid])


def robust_stats(values: list[float], floor: float) -> tuple[float, float]:
    """(median, scale): scale = max(1.4826 * MAD, floor)."""
    centre = median(values)
    mad = median([abs(v - centre) for v in values])
    return centre, max(MAD_TO_SD * mad, floor)


def robust_z(value: float, centre: float, scale: float) -> float:
    return max(-Z_LIMIT, min(Z_LIMIT, (value - centre) / scale))


@dataclass
class _Part:
    """One modality's baseline: values gathered while calibrating, then frozen statistics."""

    keys: tuple[str, ...]
    seen_s: float = 0.0
    samples: dict[str, list[float]] = field(default_factory=dict)
    stats: dict[str, tuple[float, float] | None] | None = None  # frozen: key -> (median, scale)

    @property
    def ready(self) -> bool:
        return self.stats is not None

    def freeze(self) -> None:
        self.stats = {
            k: robust_stats(v, SCALE_FLOOR[k]) if (v := self.samples.get(k)) else None
            for k in self.keys
        }
        self.samples = {}  # no longer needed

    def relative(self, values: dict[str, float | None]) -> dict[str, float | None]:
        assert self.stats is not None
        out: dict[str, float | None] = {}
        for k in self.keys:
            x, s = values.get(k), self.stats.get(k)
            out[k] = None if x is None or s is None else robust_z(x, *s)
        return out


class Baseline:
    """`observe(kind, values)` per step with that readout; returns the relative values once the
    modality's baseline is set (None while calibrating, or when the baseline is off)."""

    def __init__(self, baseline_s: float, hop_s: float, expect_face: bool = True,
                 expect_voice: bool = True) -> None:  # fmt: skip
        if not (math.isfinite(baseline_s) and baseline_s >= 0):
            raise ValueError(f"--baseline-s must be a number of seconds >= 0, got {baseline_s}")
        if not hop_s > 0:
            raise ValueError(f"step length must be > 0, got {hop_s}")
        self.baseline_s = float(baseline_s)
        self.hop_s = hop_s
        self.expected = {"face": expect_face, "voice": expect_voice}
        self.parts = {kind: _Part(keys) for kind, keys in KEYS.items()}
        self.loaded = False

    @property
    def off(self) -> bool:
        return self.baseline_s == 0 and not self.loaded

    def observe(self, kind: str, values: dict[str, float | None]) -> dict[str, float | None] | None:
        if self.off:
            return None
        part = self.parts[kind]
        if not part.ready:
            for k in part.keys:
                if values.get(k) is not None:
                    part.samples.setdefault(k, []).append(float(values[k]))  # type: ignore[arg-type]
            part.seen_s += self.hop_s
            if part.seen_s >= self.baseline_s - 1e-9:
                part.freeze()
        return part.relative(values) if part.ready else None

    # ------------------------------------------------------------------ state
    @property
    def state(self) -> str:
        if self.off:
            return "off"
        waiting = [k for k, p in self.parts.items() if self.expected[k] and not p.ready]
        return "calibrating" if waiting else "ready"

    @property
    def progress(self) -> float:
        if self.off:
            return 0.0
        shares = [
            1.0 if p.ready else min(1.0, p.seen_s / self.baseline_s) if self.baseline_s else 0.0
            for k, p in self.parts.items()
            if self.expected[k]
        ]
        return min(shares, default=1.0)

    def status(self) -> dict[str, Any]:
        """The fields of the status message's calibration block."""
        return {
            "state": self.state, "baseline_s": self.baseline_s, "progress": round(self.progress, 4),
            "face_s": round(self.parts["face"].seen_s, 3),
            "voice_s": round(self.parts["voice"].seen_s, 3), "loaded": self.loaded,
        }  # fmt: skip

    # ------------------------------------------------------------------ files
    def to_json(self) -> dict[str, Any]:
        """The frozen statistics (a modality still calibrating has none), for baseline.json."""
        out: dict[str, Any] = {
            "kind": FILE_KIND, "version": FILE_VERSION, "baseline_s": self.baseline_s,
            "statistic": "median and 1.4826 * MAD of the first baseline_s seconds; "
                         "z = (x - median) / max(scale, floor), clipped to [-10, 10]",
        }  # fmt: skip
        for kind, part in self.parts.items():
            stats = part.stats or {}
            out[kind] = None if not part.ready else {
                "seen_s": round(part.seen_s, 6),
                "median": {k: None if v is None else v[0] for k, v in stats.items()},
                "scale": {k: None if v is None else v[1] for k, v in stats.items()},
            }  # fmt: skip
        return out

    @classmethod
    def from_json(cls, data: Any, hop_s: float) -> Baseline:
        """A baseline set from a saved one (a replay): ready at once for each saved modality, and
        still calibrating for a modality the file lacks. Raises ValueError naming the problem."""
        if not isinstance(data, dict) or data.get("kind") != FILE_KIND:
            raise ValueError(f"not an affect-monitor baseline file (no kind {FILE_KIND!r})")
        if data.get("version") != FILE_VERSION:
            raise ValueError(f"baseline file version {data.get('version')!r}, "
                             f"expected {FILE_VERSION}")  # fmt: skip
        baseline = cls(_finite(data.get("baseline_s"), "baseline_s"), hop_s)
        baseline.loaded = True
        for kind, part in baseline.parts.items():
            saved = data.get(kind)
            if saved is None:
                continue
            if not isinstance(saved, dict):
                raise ValueError(f"baseline file: {kind} must be an object or null")
            medians, scales = saved.get("median") or {}, saved.get("scale") or {}
            part.stats = {}
            for k in part.keys:
                m, s = medians.get(k), scales.get(k)
                if m is None or s is None:
                    part.stats[k] = None
                    continue
                if _finite(s, f"{kind}.scale.{k}") <= 0:
                    raise ValueError(f"baseline file: {kind}.scale.{k} must be > 0, got {s}")
                part.stats[k] = (_finite(m, f"{kind}.median.{k}"), float(s))
            part.seen_s = _finite(saved.get("seen_s", 0.0), f"{kind}.seen_s")
        return baseline


def _finite(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"baseline file: {name} must be a finite number, got {value!r:.40}")
    return float(value)
