"""CMU-MOSI/MOSEI regression metrics, computed the way the MMSA toolkit computes them.

- Acc-7 / Acc-5: predictions and labels clipped to [-3, 3] / [-2, 2], then rounded (NumPy rounds
  halves to even: 0.5 -> 0, 1.5 -> 2, -0.5 -> -0), and compared.
- MAE on the unclipped values; Corr is Pearson's r (0 when either side is constant).
- Acc-2 and weighted F1, two conventions:
    non-0: samples with label == 0 are dropped; positive means pred > 0 and label > 0;
    has-0: every sample; positive means pred >= 0 and label >= 0.
"""

from __future__ import annotations

import numpy as np


def _weighted_f1(truth: np.ndarray, pred: np.ndarray) -> float:
    """Support-weighted mean of per-class F1 over the classes in either array (as scikit-learn's
    f1_score(average='weighted'); a class absent from `truth` weighs 0)."""
    total = len(truth)
    if total == 0:
        return float("nan")
    score = 0.0
    for cls in np.union1d(truth, pred):
        tp = np.sum((pred == cls) & (truth == cls))
        fp = np.sum((pred == cls) & (truth != cls))
        fn = np.sum((pred != cls) & (truth == cls))
        denom = 2 * tp + fp + fn
        f1 = 0.0 if denom == 0 else 2 * tp / denom
        score += f1 * np.sum(truth == cls) / total
    return float(score)


def _multiclass_acc(pred: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean(np.round(pred) == np.round(truth)))


def regression_metrics(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """pred, truth: (N,) sentiment intensities. Returns the MMSA metric set (fractions, not %)."""
    pred = np.asarray(pred, dtype=np.float64).reshape(-1)
    truth = np.asarray(truth, dtype=np.float64).reshape(-1)
    if pred.shape != truth.shape or pred.size == 0:
        raise ValueError(
            f"need equal, non-empty prediction and label arrays, got {pred.shape} and {truth.shape}"
        )
    non_zero = truth != 0
    nz_truth, nz_pred = truth[non_zero] > 0, pred[non_zero] > 0
    has0_truth, has0_pred = truth >= 0, pred >= 0
    if np.std(pred) == 0 or np.std(truth) == 0:
        corr = 0.0
    else:
        corr = float(np.corrcoef(pred, truth)[0, 1])
    return {
        "acc2_non0": float(np.mean(nz_pred == nz_truth)) if non_zero.any() else float("nan"),
        "f1_non0": _weighted_f1(nz_truth, nz_pred),
        "acc2_has0": float(np.mean(has0_pred == has0_truth)),
        "f1_has0": _weighted_f1(has0_truth, has0_pred),
        "acc5": _multiclass_acc(np.clip(pred, -2, 2), np.clip(truth, -2, 2)),
        "acc7": _multiclass_acc(np.clip(pred, -3, 3), np.clip(truth, -3, 3)),
        "mae": float(np.mean(np.abs(pred - truth))),
        "corr": corr,
    }


def json_safe(obj):
    """`obj` with NaN/inf floats (e.g. Acc-2 non-0 when every label is 0) as None, for JSON."""
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [json_safe(v) for v in obj]
    return obj


METRIC_LABELS = {
    "acc2_non0": "Acc-2 (non-0)",
    "f1_non0": "F1 (non-0)",
    "acc2_has0": "Acc-2 (has-0)",
    "f1_has0": "F1 (has-0)",
    "acc5": "Acc-5",
    "acc7": "Acc-7",
    "mae": "MAE",
    "corr": "Corr",
}


def format_table(rows: dict[str, dict[str, float]]) -> str:
    """A plain-text table, one row per named result; accuracies and F1 shown x100 as in papers."""
    header = ["", *METRIC_LABELS.values()]
    lines = [" | ".join(header)]
    for name, m in rows.items():
        cells = [name]
        for key in METRIC_LABELS:
            value = m.get(key, float("nan"))
            cells.append(f"{value:.3f}" if key in ("mae", "corr") else f"{100 * value:.2f}")
        lines.append(" | ".join(cells))
    return "\n".join(lines)
