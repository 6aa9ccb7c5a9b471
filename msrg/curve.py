"""How readable the live curve is: metrics of the time-step intensities over speech steps.

A curve is one utterance's time-step intensities at its speech steps (words or voice activity),
in order. Over a set of utterances:

- saturation: share of all speech steps with |intensity| > 2.9 (pinned at the +-3 limit);
- jitter: mean |change| between consecutive speech steps, pooled over every pair of every
  utterance (non-speech steps between two speech steps are skipped: the dashboard holds the
  curve there);
- last step against the label: Acc-2 (non-0), MAE and Corr of each utterance's last speech step;
- sign agreement: share of utterances with |SIM final| > 0.5 whose last speech step has the sign
  of the final result.
"""

from __future__ import annotations

import numpy as np

from msrg.metrics import regression_metrics

SATURATED = 2.9
DECIDED = 0.5  # |final| above which an utterance has a sign to agree with
CURVE_LABELS = {
    "saturation": "saturated %",
    "jitter": "jitter",
    "last_acc2_non0": "last Acc-2",
    "last_mae": "last MAE",
    "last_corr": "last Corr",
    "sign_agreement": "sign agree %",
}


def speech_curves(intensity: np.ndarray, speech: np.ndarray) -> list[np.ndarray]:
    """intensity, speech (N, T) -> N arrays of the intensities at speech steps (may be empty)."""
    return [np.asarray(row[s > 0], np.float64) for row, s in zip(intensity, speech)]


def curve_metrics(
    curves: list[np.ndarray], finals: np.ndarray, labels: np.ndarray | None = None
) -> dict[str, float]:
    """Curve metrics of N utterances: curves (N arrays), SIM finals (N,), labels (N,) or None
    (then no last-step metrics). Utterances without a speech step are left out and counted."""
    finals = np.asarray(finals, np.float64).reshape(-1)
    if len(curves) != len(finals) or (labels is not None and len(labels) != len(finals)):
        raise ValueError(f"need one final (and label) per curve, got {len(curves)} curves, "
                         f"{len(finals)} finals")  # fmt: skip
    keep = [i for i, c in enumerate(curves) if len(c) > 0]
    out: dict[str, float] = {"utterances": len(keep), "without_speech": len(curves) - len(keep)}
    if not keep:
        return out
    steps = np.concatenate([curves[i] for i in keep])
    changes = np.concatenate([np.abs(np.diff(curves[i])) for i in keep])
    last = np.array([curves[i][-1] for i in keep])
    out["speech_steps"] = int(len(steps))
    out["saturation"] = float(np.mean(np.abs(steps) > SATURATED))
    out["jitter"] = float(changes.mean()) if len(changes) else float("nan")
    decided = np.abs(finals[keep]) > DECIDED
    out["decided"] = int(decided.sum())
    out["sign_agreement"] = (
        float(np.mean(np.sign(last[decided]) == np.sign(finals[keep][decided])))
        if decided.any() else float("nan")
    )  # fmt: skip
    if labels is not None:
        m = regression_metrics(last, np.asarray(labels, np.float64)[keep])
        out.update(last_acc2_non0=m["acc2_non0"], last_mae=m["mae"], last_corr=m["corr"])
    return out


def format_curve_table(rows: dict[str, dict[str, float]]) -> str:
    """One row per named result; shares shown x100."""
    lines = [" | ".join(["", *CURVE_LABELS.values()])]
    for name, m in rows.items():
        cells = [name]
        for key in CURVE_LABELS:
            value = m.get(key, float("nan"))
            pct = key in ("saturation", "last_acc2_non0", "sign_agreement")
            cells.append(f"{100 * value:.2f}" if pct else f"{value:.3f}")
        lines.append(" | ".join(cells))
    return "\n".join(lines)
