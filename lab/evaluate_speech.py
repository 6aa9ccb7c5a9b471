"""Check a checkpoint and the voice readouts against annotated speech.

    python -m lab.evaluate_speech --checkpoint CKPT --labels LABELS.csv [--json OUT.json]

LABELS.csv is a speech labels file (path,corpus,speaker,emotion,intensity; lab/speech_labels.py).
Each clip is replayed through the live path (VAD, openSMILE, Whisper, the checkpoint's text
encoder, the aligner; features cached as lab.build_dataset caches them), and the model runs over
it as live: the time steps over the whole clip, then an utterance result for each speech segment
the VAD closed, over that segment's steps. Per corpus (the `corpus` column) and over all:

- n: clips evaluated; no_utterance: clips in which no speech segment closed (counted wrong);
- sim_final_sign_accuracy: the sign of the utterance results' final intensity (pooled over the
  clip's utterances, weighted by their steps) against the sign of the emotion's valence target,
  over clips of non-zero valence;
- voice_arousal_auc: the clip's mean voice arousal readout (realtime/voice_readout.py), clips of
  high-arousal categories against low (lab/emotion_targets.py); voice_arousal_auc_formula: the
  same for the hand-set formula it replaced (realtime/readouts.py before), for comparison;
- voice_valence_sign_accuracy: the clip's mean voice valence readout's sign, over clips of
  non-zero valence; null when the readout has no valence.
"""

from __future__ import annotations

import argparse
import json
import math
import pickle
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np

from lab.emotion_targets import EMOTIONS
from msrg.metrics import json_safe

VOICE = 1  # the audio column of the presence mask


def auc(scores: np.ndarray, positive: np.ndarray) -> float | None:
    """Area under the ROC curve (ties count half); None without both classes."""
    pos, neg = scores[positive], scores[~positive]
    if len(pos) == 0 or len(neg) == 0:
        return None
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


def utterance_finals(model, data, use, utterance_steps) -> list[float | None]:  # noqa: ANN001
    """Each clip's utterance results pooled by their step counts (None: no utterance).
    utterance_steps: per clip, the (K, 2) step ranges of its speech segments (None: unknown)."""
    import torch

    out: list[float | None] = []
    model.eval()
    with torch.no_grad():
        for i in range(len(data)):
            steps = int(data.valid[i].sum())
            ranges = utterance_steps[i]
            if ranges is None:  # features cached before segments were kept: the whole clip
                ranges = np.array([[0, steps]])
            if steps == 0 or len(ranges) == 0:
                out.append(None)
                continue
            text, audio, visual, mask = (
                torch.from_numpy(np.ascontiguousarray(a[i : i + 1, :steps]))
                for a in (data.text, data.audio, data.visual, data.mask)
            )
            mask = mask * torch.from_numpy(use)
            seq = model(text, audio, visual, mask)
            finals, weights = [], []
            for a, b in ranges:
                cut = slice(int(a), int(b))
                utt = model.utterance(
                    text[:, cut], audio[:, cut], visual[:, cut], mask[:, cut],
                    torch.ones(1, b - a), seq.intensity[:, cut], seq.salience[:, cut],
                )  # fmt: skip
                finals.append(float(utt.final_intensity[0]))
                weights.append(b - a)
            out.append(float(np.average(finals, weights=weights)))
    return out


def clip_readouts(data, readout, voiced_f0) -> tuple[list, list, list]:  # noqa: ANN001
    """Each clip's mean voice arousal (fitted readout, and the old formula: voiced_f0, per clip
    the (T, 3) voiced F0 statistics or None) and mean voice valence (None where the readout has
    none) over its speech steps; None without speech."""
    from lab.voice_formula import formula_arousal_steps

    arousal, formula, valence = [], [], []
    for i in range(len(data)):
        speech = (data.valid[i] > 0) & (data.mask[i, :, VOICE] > 0)
        if not speech.any():
            arousal.append(None), formula.append(None), valence.append(None)
            continue
        x = data.audio[i][speech]
        arousal.append(float(np.mean([readout.arousal(row) for row in x])))
        f0 = voiced_f0[i]
        formula.append(
            None if f0 is None else float(np.mean(formula_arousal_steps(data.audio[i], f0, speech)))
        )
        valence.append(
            float(np.mean([readout.valence(row) for row in x])) if readout.has_valence else None
        )
    return arousal, formula, valence


def summarise(rows: list[dict]) -> dict:
    """The figures of one group of clips (see the module doc)."""
    signed = [r for r in rows if r["valence"] != 0]
    right = [r["final"] is not None and math.copysign(1, r["final"]) == math.copysign(1, r["valence"])
             and r["final"] != 0 for r in signed]  # fmt: skip
    sided = [r for r in rows if r["side"] and r["arousal"] is not None]
    score = lambda key: (  # noqa: E731
        auc(np.array([r[key] for r in sided], float), np.array([r["side"] == "high" for r in sided]))
        if sided and all(r[key] is not None for r in sided) else None
    )  # fmt: skip
    with_valence = [r for r in signed if r["voice_valence"] is not None]
    by_emotion = {}
    for e in EMOTIONS:
        of = [r for r in rows if r["emotion"] == e]
        if of:
            finals = [r["final"] for r in of if r["final"] is not None]
            ars = [r["arousal"] for r in of if r["arousal"] is not None]
            by_emotion[e] = {"n": len(of), "mean_final": float(np.mean(finals)) if finals else None,
                             "mean_voice_arousal": float(np.mean(ars)) if ars else None}  # fmt: skip
    return {
        "n": len(rows),
        "no_utterance": sum(r["final"] is None for r in rows),
        "n_signed": len(signed),
        "sim_final_sign_accuracy": float(np.mean(right)) if right else None,
        "majority_sign_rate": (max(sum(r["valence"] > 0 for r in signed),
                                   sum(r["valence"] < 0 for r in signed)) / len(signed))
        if signed else None,  # fmt: skip
        "voice_arousal_auc": score("arousal"),
        "voice_arousal_auc_formula": score("formula"),
        "voice_valence_sign_accuracy": float(np.mean(
            [math.copysign(1, r["voice_valence"]) == math.copysign(1, r["valence"]) for r in with_valence]
        )) if with_valence and len(with_valence) == len(signed) else None,  # fmt: skip
        "by_emotion": by_emotion,
    }


def format_report(report: dict) -> str:
    cols = ("n", "sim_final_sign_accuracy", "voice_arousal_auc", "voice_arousal_auc_formula",
            "voice_valence_sign_accuracy")  # fmt: skip
    heads = ("clips", "SIM sign acc", "voice arousal AUC", "(old formula)", "voice valence acc")
    groups = {**report["corpora"], "all": report["all"]}
    width = max(len(k) for k in groups) + 2
    lines = [f"{'corpus':<{width}}" + "".join(f"{h:>19}" for h in heads)]
    for name, g in groups.items():
        cells = [f"{g[c]:>19}" if isinstance(g[c], int) else
                 f"{'-' if g[c] is None else f'{g[c]:.3f}':>19}" for c in cols]  # fmt: skip
        lines.append(f"{name:<{width}}" + "".join(cells))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lab.evaluate_speech", description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True, type=Path)
    p.add_argument("--labels", required=True, type=Path, help="path,corpus,speaker,emotion,intensity")
    p.add_argument("--split", choices=["train", "dev", "test", "all"], default="all",
                   help="only the rows of this split (the labels file's split column)")  # fmt: skip
    p.add_argument("--voice-readout", type=Path, default=None,
                   help="fitted voice readout file (default: the shipped one)")  # fmt: skip
    p.add_argument("--json", type=Path)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--cache", type=Path, default=None, help="feature cache folder")
    args = p.parse_args(argv)

    from dataclasses import replace

    from lab.dataset_builder import BuildOptions, DatasetError, build, speech_segments
    from lab.speech_labels import LabelsError, read_speech_labels
    from msrg.checkpoint import CheckpointError, check_feature_dims, load_checkpoint
    from msrg.data import DataFormatError, load_mmsa
    from msrg.modalities import use_mask
    from realtime.voice_readout import VoiceReadoutError, load_voice_readout

    try:
        clips = {c.id: c for c in read_speech_labels(args.labels)}
        segments = speech_segments(args.labels)
        split = {"dev": "valid"}.get(args.split, args.split)
        if split != "all":
            segments = [s for s in segments if s.split == split]
        if not segments:
            raise DatasetError(f"{args.labels} has no rows of split {args.split}")
        loaded = load_checkpoint(args.checkpoint)
        readout = load_voice_readout(args.voice_readout)
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "features.pkl"
            # One split for the build: every row is evaluated, whatever its split.
            segments = [replace(s, split="test") for s in segments]
            summary = build(segments, BuildOptions(source="media"), out, workers=args.workers,
                            cache_dir=args.cache, text_adapter=loaded.text_adapter)  # fmt: skip
            data = load_mmsa(out, ("test",))["test"]
            extra = pickle.loads(out.read_bytes())["test"]  # what load_mmsa does not keep
        check_feature_dims(loaded.config, data.dims, f"checkpoint {args.checkpoint}", "the clips")
    except (LabelsError, DatasetError, DataFormatError, CheckpointError, VoiceReadoutError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finals = utterance_finals(loaded.model, data, use_mask(loaded.modality_usage),
                              extra["utterance_steps"])  # fmt: skip
    arousal, formula, valence = clip_readouts(data, readout, extra["voiced_f0"])
    rows = []
    for i, clip_id in enumerate(data.ids):
        clip, tgt = clips[clip_id], clips[clip_id].target
        rows.append({"corpus": clip.corpus, "emotion": clip.emotion, "valence": tgt.valence,
                     "side": tgt.arousal_side, "final": finals[i], "arousal": arousal[i],
                     "formula": formula[i], "voice_valence": valence[i]})  # fmt: skip
    grouped = defaultdict(list)
    for r in rows:
        grouped[r["corpus"]].append(r)
    report = {
        "checkpoint": str(args.checkpoint), "labels": str(args.labels), "split": args.split,
        "voice_readout": str(readout.path), "skipped": summary["problems"],
        "corpora": {name: summarise(g) for name, g in sorted(grouped.items())},
        "all": summarise(rows),
    }  # fmt: skip
    print(format_report(report))
    if summary["problems"]:
        print(f"skipped {len(summary['problems'])} clip(s): "
              + "; ".join(f"{k}: {v}" for k, v in sorted(summary["problems"].items())[:5]))  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(json_safe(report), indent=2))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
