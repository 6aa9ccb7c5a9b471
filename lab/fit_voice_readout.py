"""python -m lab.fit_voice_readout --data SPEECH.pkl --labels LABELS.csv [--out FILE.json]

Fits the voice readouts (realtime/voice_readout.py) on the `train` split of a speech set built by
lab.build_dataset from a speech labels file, and checks them on its `valid` split, under the rule
in docs/eval/voice-readout-rule.md:

- arousal: ridge regression of each speech step's 25 standardised eGeMAPS descriptor means onto
  the clip's arousal target; alpha by leave-speakers-out cross-validation of the clip-level AUC;
  it is written if its dev AUC is above the hand-set formula's (lab/voice_formula.py);
- valence: L2 logistic regression onto the sign of the clip's valence target (clips of non-zero
  valence); written only if its dev sign accuracy is at least MARGIN above the majority rate.

The output records the figures and what was fitted on; it is written only where the arousal rule
holds (else the command says so and exits 1).
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
from pathlib import Path

import numpy as np

from lab.evaluate_speech import VOICE, auc
from lab.speech_labels import LabelsError, read_speech_labels
from lab.voice_formula import formula_arousal_steps

ALPHAS = (1.0, 10.0, 100.0, 1000.0, 10000.0)
L2S = (0.01, 0.1, 1.0, 10.0, 100.0)
FOLDS = 7
MARGIN = 0.10  # valence: sign accuracy above the dev majority rate needed to ship one


def clip_steps(split: dict, i: int) -> np.ndarray:
    """Clip i's speech-step mask."""
    steps = int(split["valid"][i].sum())
    speech = (split["valid"][i] > 0) & (split["mask"][i, :, VOICE] > 0)
    speech[steps:] = False
    return speech


def ridge(x: np.ndarray, y: np.ndarray, alpha: float) -> tuple[np.ndarray, float]:
    xm, ym = x.mean(0), y.mean()
    w = np.linalg.solve((x - xm).T @ (x - xm) + alpha * np.eye(x.shape[1]), (x - xm).T @ (y - ym))
    return w, float(ym - xm @ w)


def logistic(x: np.ndarray, y: np.ndarray, l2: float, iters: int = 50) -> tuple[np.ndarray, float]:
    """L2-penalised logistic regression (y in {0, 1}) by Newton's method; intercept unpenalised."""
    xb = np.hstack([x, np.ones((len(x), 1))])
    w = np.zeros(xb.shape[1])
    penalty = np.full(xb.shape[1], l2)
    penalty[-1] = 0.0
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-np.clip(xb @ w, -50, 50)))
        grad = xb.T @ (p - y) + penalty * w
        hess = (xb * (p * (1 - p))[:, None]).T @ xb + np.diag(penalty) + 1e-9 * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.max(np.abs(step)) < 1e-8:
            break
    return w[:-1], float(w[-1])


class Clips:
    """The speech steps of one split, standardised, with each clip's targets and speaker."""

    def __init__(self, split: dict, clips: dict, mean=None, std=None) -> None:  # noqa: ANN001
        ids = split["id"]
        self.masks = [clip_steps(split, i) for i in range(len(ids))]
        keep = [i for i, m in enumerate(self.masks) if m.any()]
        self.skipped = len(ids) - len(keep)
        self.raw = [split["audio"][i][self.masks[i]].astype(np.float64) for i in keep]
        self.formula = [np.mean(formula_arousal_steps(split["audio"][i], split["voiced_f0"][i],
                                                      self.masks[i])) for i in keep]  # fmt: skip
        rows = np.concatenate(self.raw)
        self.mean = rows.mean(0) if mean is None else mean
        self.std = np.where(rows.std(0) < 1e-9, 1.0, rows.std(0)) if std is None else std
        self.x = [(r - self.mean) / self.std for r in self.raw]
        meta = [clips[ids[i]] for i in keep]
        self.speaker = np.array([c.speaker for c in meta])
        self.arousal = np.array([c.target.arousal for c in meta])
        self.valence = np.array([c.target.valence for c in meta])
        self.side = np.array([c.target.arousal_side or "" for c in meta])

    def stack(self, idx, values) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001
        """Steps of the clips idx, each with its clip's value."""
        return (np.concatenate([self.x[i] for i in idx]),
                np.concatenate([np.full(len(self.x[i]), values[i]) for i in idx]))  # fmt: skip

    def clip_mean(self, f) -> np.ndarray:  # noqa: ANN001
        return np.array([float(np.mean(f(x))) for x in self.x])

    def arousal_auc(self, scores: np.ndarray, idx=None) -> float | None:  # noqa: ANN001
        idx = np.arange(len(self.x)) if idx is None else np.asarray(idx)
        sided = idx[self.side[idx] != ""]
        return auc(scores[sided], self.side[sided] == "high")


def choose(train: Clips, fit, score, grid) -> tuple[float, dict]:  # noqa: ANN001
    """The grid value with the best mean held-out score over leave-speakers-out folds."""
    speakers = np.unique(train.speaker)
    folds = np.array_split(speakers, min(FOLDS, len(speakers)))
    results = {}
    for value in grid:
        per_fold = []
        for held in folds:
            out = np.isin(train.speaker, held)
            model = fit(np.nonzero(~out)[0], value)
            s = score(model, np.nonzero(out)[0])
            if s is not None:
                per_fold.append(s)
        results[value] = float(np.mean(per_fold)) if per_fold else float("nan")
    best = max(results, key=lambda v: (np.nan_to_num(results[v], nan=-1.0), -v))
    return best, {str(k): v for k, v in results.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lab.fit_voice_readout", description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, type=Path, help="lab.build_dataset output of a speech labels file")
    p.add_argument("--labels", required=True, type=Path, help="the speech labels file it was built from")
    p.add_argument("--out", type=Path, default=None, help="default: realtime/voice_readout.json")
    args = p.parse_args(argv)
    try:
        clips = {c.id: c for c in read_speech_labels(args.labels)}
        data = pickle.loads(args.data.read_bytes())
    except (LabelsError, OSError, pickle.UnpicklingError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if "train" not in data or "valid" not in data:
        print(f"error: {args.data} needs train and valid splits", file=sys.stderr)
        return 2
    if any(f is None for f in data["train"]["voiced_f0"] + data["valid"]["voiced_f0"]):
        print(f"error: {args.data} was built before voiced F0 was kept; rebuild it", file=sys.stderr)
        return 2
    train = Clips(data["train"], clips)
    dev = Clips(data["valid"], clips, train.mean, train.std)

    # Arousal: ridge onto the clip's target, chosen on clip-level AUC of held-out speakers.
    def fit_a(idx, alpha):  # noqa: ANN001, ANN202
        return ridge(*train.stack(idx, train.arousal), alpha)

    def score_a(model, idx):  # noqa: ANN001, ANN202
        w, b = model
        return train.arousal_auc(train.clip_mean(lambda x: np.clip(b + x @ w, -1, 1)), idx)

    alpha, cv_a = choose(train, fit_a, score_a, ALPHAS)
    w_a, b_a = fit_a(np.arange(len(train.x)), alpha)
    dev_auc = dev.arousal_auc(dev.clip_mean(lambda x: np.clip(b_a + x @ w_a, -1, 1)))
    formula_auc = dev.arousal_auc(np.array(dev.formula))

    # Valence: logistic onto the sign, clips of non-zero valence.
    signed_tr = np.nonzero(train.valence != 0)[0]
    positive = (train.valence > 0).astype(float)

    def fit_v(idx, l2):  # noqa: ANN001, ANN202
        idx = np.intersect1d(idx, signed_tr)
        return logistic(*train.stack(idx, positive), l2)

    def accuracy(model, clipset, idx):  # noqa: ANN001, ANN202
        w, b = model
        idx = [i for i in idx if clipset.valence[i] != 0]
        if not idx:
            return None
        means = np.array([np.mean(2 / (1 + np.exp(-(b + clipset.x[i] @ w))) - 1) for i in idx])
        return float(np.mean(np.sign(means) == np.sign(clipset.valence[idx])))

    l2, cv_v = choose(train, fit_v, lambda m, idx: accuracy(m, train, idx), L2S)
    w_v, b_v = fit_v(np.arange(len(train.x)), l2)
    signed_dev = np.nonzero(dev.valence != 0)[0]
    dev_acc = accuracy((w_v, b_v), dev, signed_dev)
    majority = max(np.mean(dev.valence[signed_dev] > 0), np.mean(dev.valence[signed_dev] < 0))
    valence_ships = dev_acc is not None and dev_acc >= majority + MARGIN
    arousal_ships = dev_auc is not None and formula_auc is not None and dev_auc > formula_auc

    figures = {
        "train_clips": len(train.x), "dev_clips": len(dev.x),
        "no_speech_clips": train.skipped + dev.skipped,
        "train_speakers": sorted(set(train.speaker.tolist())),
        "dev_speakers": sorted(set(dev.speaker.tolist())),
        "arousal": {"alpha": alpha, "cv_auc": cv_a, "dev_auc": dev_auc, "dev_auc_formula": formula_auc,
                    "ships": bool(arousal_ships)},
        "valence": {"l2": l2, "cv_accuracy": cv_v, "dev_sign_accuracy": dev_acc,
                    "dev_majority_rate": float(majority), "margin": MARGIN,
                    "ships": bool(valence_ships)},
    }  # fmt: skip
    print(f"arousal: ridge alpha {alpha:g}, dev AUC {dev_auc:.3f} (hand-set formula {formula_auc:.3f})")
    print(f"valence: logistic l2 {l2:g}, dev sign accuracy {dev_acc:.3f} "
          f"(majority {majority:.3f}, needs {majority + MARGIN:.3f}): "
          + ("added" if valence_ships else "not added"))  # fmt: skip
    if not arousal_ships:
        print("arousal: the fitted readout is not better than the formula on dev; nothing written")
        print(json.dumps(figures, indent=2))
        return 1
    out = args.out or Path(__file__).resolve().parents[1] / "realtime" / "voice_readout.json"
    blob = {
        "about": "realtime/voice_readout.py; fitted by lab.fit_voice_readout under "
                 "docs/eval/voice-readout-rule.md",
        "mean": train.mean.tolist(), "std": train.std.tolist(),
        "arousal": {"weights": w_a.tolist(), "bias": b_a},
        "valence": {"weights": w_v.tolist(), "bias": b_v} if valence_ships else None,
        "fitted": {"data": args.data.name, "labels": args.labels.name,
                   "corpora": sorted({c.corpus for c in clips.values()}), **figures},
    }  # fmt: skip
    out.write_text(json.dumps(blob, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
