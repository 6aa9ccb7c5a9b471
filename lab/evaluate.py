"""Evaluate a checkpoint on a labelled split, with features built exactly as the dataset builder
builds them (cached), and optionally beside a ridge-regression text baseline.

    python -m lab.evaluate --checkpoint CKPT --labels LABELS.csv [--split dev|test]
                            [--media DIR | --tts] [--transcripts] [--baseline] [--json OUT]

Besides the utterance metrics it prints the live curve's (msrg/curve.py: saturation, jitter, the
last speech step against the label and its sign against SIM's final), also under "curve" in the JSON.

Like lab.build_dataset, this command reaches into realtime/ for the live extractors (inside
main() only); the library modules of msrg/ never do.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path

import numpy as np

from msrg.curve import curve_metrics, format_curve_table
from msrg.metrics import format_table, json_safe, regression_metrics
from msrg.text_adapter import adapter_digest

log = logging.getLogger("lab.evaluate")
RIDGE_ALPHAS = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0)


def fit_ridge(x: np.ndarray, y: np.ndarray, alphas=RIDGE_ALPHAS, folds: int = 5, seed: int = 0):
    """Ridge regression with an intercept; alpha chosen by k-fold cross-validated MAE on (x, y).
    Returns a predict function and the chosen alpha."""

    def solve(xa: np.ndarray, ya: np.ndarray, alpha: float) -> tuple[np.ndarray, float]:
        mu, ymu = xa.mean(0), ya.mean()
        xc = xa - mu
        w = np.linalg.solve(xc.T @ xc + alpha * np.eye(x.shape[1]), xc.T @ (ya - ymu))
        return w, ymu - mu @ w

    order = np.random.default_rng(seed).permutation(len(y))
    parts = np.array_split(order, folds)
    best = None
    for alpha in alphas:
        errors = []
        for k in range(folds):
            train_idx = np.concatenate([p for j, p in enumerate(parts) if j != k])
            w, b = solve(x[train_idx], y[train_idx], alpha)
            errors.append(np.mean(np.abs(x[parts[k]] @ w + b - y[parts[k]])))
        if best is None or np.mean(errors) < best[0]:
            best = (float(np.mean(errors)), alpha)
    alpha = best[1]
    w, b = solve(x, y, alpha)
    return (lambda z: np.clip(z @ w + b, -3.0, 3.0)), alpha


def predict_checkpoint(loaded, data) -> dict:  # noqa: ANN001
    """Utterance-level predictions of every segment (SIM final, ULF, time-step summary) and
    each segment's speech-step curve; `loaded` is a msrg.checkpoint.LoadedCheckpoint."""
    from dataclasses import replace

    from lab.train import predict
    from msrg.checkpoint import check_feature_dims
    from msrg.modalities import use_mask

    check_feature_dims(loaded.config, data.dims, f"checkpoint {loaded.path}", "the built features")
    # As in live use (engines/modality_gate.py): what the checkpoint did not learn from is absent.
    return predict(loaded.model, replace(data, mask=data.mask * use_mask(loaded.modality_usage)))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lab.evaluate", description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True, type=Path)
    p.add_argument("--labels", required=True, type=Path, help="id,text,label,mode (MMSA label.csv)")
    p.add_argument("--split", default="dev", choices=["dev", "valid", "test", "train"])
    how = p.add_mutually_exclusive_group()
    how.add_argument("--media", type=Path, help="folder of the segments' media")
    how.add_argument(
        "--tts", action="store_true", help="speak the transcripts (default without --media)"
    )
    p.add_argument(
        "--transcripts",
        action="store_true",
        help="ground-truth words instead of speech recognition",
    )
    p.add_argument(
        "--baseline",
        action="store_true",
        help="also fit ridge on MiniLM sentence embeddings of the train fold's transcripts",
    )
    p.add_argument("--json", type=Path, help="write the metrics here")
    p.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="feature cache folder (default: next to the label file's build)",
    )
    p.add_argument("--workers", type=int, default=2)
    p.add_argument(
        "--no-text-hold", action="store_true",
        help="build features without holding text through gaps between words (as before)",
    )  # fmt: skip
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    from lab.dataset_builder import BuildOptions, DatasetError, build, read_labels
    from msrg.checkpoint import CheckpointError, load_checkpoint
    from msrg.data import DataFormatError, load_mmsa

    split = {"dev": "valid"}.get(args.split, args.split)
    try:
        segments, problems = read_labels(args.labels)
        wanted = [s for s in segments if s.split == split]
        if not wanted:
            raise DatasetError(f"{args.labels} has no rows of split '{args.split}'")
        options = BuildOptions(
            source="media" if args.media else "tts", transcripts=args.transcripts,
            text_hold=not args.no_text_hold,
        )  # fmt: skip
        loaded = load_checkpoint(args.checkpoint)
        # Words are embedded with the checkpoint's encoder and adapter, as live and in training.
        text_adapter = loaded.text_adapter
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "features.pkl"
            summary = build(
                wanted,
                options,
                out,
                media_dir=args.media,
                workers=args.workers,
                cache_dir=args.cache,
                text_adapter=text_adapter,
            )
            data = load_mmsa(out, (split,))[split]
        preds = predict_checkpoint(loaded, data)
    except (DatasetError, DataFormatError, CheckpointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rows = {
        "MSRG (SIM final)": regression_metrics(preds["final"], data.labels),
        "MSRG ULF only": regression_metrics(preds["utterance"], data.labels),
        "MSRG time steps only": regression_metrics(preds["timestep"], data.labels),
    }
    report = {"split": args.split, "n": len(data), "skipped": {**summary["problems"]},
              "features": {**options.__dict__, "text_adapter": adapter_digest(text_adapter)},
              "checkpoint": str(args.checkpoint)}  # fmt: skip
    if args.baseline:
        from realtime.extractors.words import WordEmbedder

        train_rows = [s for s in segments if s.split == "train" and s.text]
        if not train_rows:
            print("error: --baseline needs train rows in the label file", file=sys.stderr)
            return 2
        embedder = WordEmbedder()
        x_train = np.stack([embedder.embed_sentence(s.text) for s in train_rows])
        y_train = np.array([s.label for s in train_rows], np.float32)
        ridge, alpha = fit_ridge(x_train, y_train)
        by_id = {s.id: s for s in wanted}
        x_eval = np.stack([embedder.embed_sentence(by_id[i].text) for i in data.ids])
        rows[f"ridge on MiniLM(transcript), alpha {alpha:g}"] = regression_metrics(
            ridge(x_eval), data.labels
        )
    print(f"{args.split}: {len(data)} segments ({len(summary['problems'])} skipped)")
    print(format_table(rows))
    curve = curve_metrics(preds["curves"], preds["final"], data.labels)
    print(format_curve_table({"MSRG curve (speech steps)": curve}))
    report["metrics"] = rows
    report["curve"] = curve
    if args.json:
        args.json.write_text(json.dumps(json_safe(report), indent=2))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
