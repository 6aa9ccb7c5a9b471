"""python -m lab.build_dataset --labels LABELS.csv (--media DIR | --tts) --out FILE.pkl

A speech labels file (path,corpus,speaker,emotion,intensity: lab/speech_labels.py) names its clips
itself and needs neither --media nor --tts; its words are recognised, as live.

The command lives here, beside training, as users look for it; the replay itself is done by
lab.dataset_builder with the live extractors. This is the one module of msrg/ that reaches
into realtime/, and only inside main(), so the model, training and metrics never depend on it.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lab.build_dataset",
        description="Build an MSRG training set by replaying labelled segments through the live extractors.",
    )
    parser.add_argument(
        "--labels",
        required=True,
        type=Path,
        help="id,text,label,mode (MMSA), video_id,segment,start_s,end_s,label, or "
             "path,corpus,speaker,emotion,intensity (annotated speech)",
    )  # fmt: skip
    how = parser.add_mutually_exclusive_group()
    how.add_argument(
        "--media",
        type=Path,
        help="folder of clips (DIR/VIDEO/CLIP.mp4 or DIR/ID.mp4) or whole videos (DIR/VIDEO.mp4 with timings)",
    )
    how.add_argument(
        "--tts", action="store_true", help="speak each transcript with espeak-ng instead (no video)"
    )
    parser.add_argument(
        "--transcripts",
        action="store_true",
        help="use the ground-truth words instead of speech recognition",
    )
    parser.add_argument(
        "--no-text-hold", action="store_true",
        help="text only while a word's span overlaps a step (as checkpoints up to msrg-live.pt "
             "were trained); default: held through gaps shorter than the pause, as live",
    )  # fmt: skip
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument(
        "--splits", nargs="+", default=None, help="only these splits (train valid test)"
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="per-segment feature cache (default: the cache folder)",
    )
    parser.add_argument(
        "--limit", type=int, default=None, help="only the first N rows (for a quick look)"
    )
    parser.add_argument(
        "--text-adapter", type=Path, default=None,
        help="embed words with this encoder adapter (a lab.tune_text file or a checkpoint; it names its encoder)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from lab.dataset_builder import BuildOptions, DatasetError, build, read_labels
    from msrg.text_adapter import AdapterError, load_adapter

    try:
        adapter = load_adapter(args.text_adapter) if args.text_adapter else None
        segments, problems = read_labels(args.labels)
        if args.splits:
            segments = [s for s in segments if s.split in args.splits]
        if args.limit:
            segments = segments[: args.limit]
        if not (args.tts or args.media) and not all(s.path for s in segments):
            raise DatasetError(f"{args.labels} does not name its clips: pass --media DIR or --tts")
        options = BuildOptions(source="tts" if args.tts else "media", transcripts=args.transcripts,
                               text_hold=not args.no_text_hold)  # fmt: skip
        summary = build(
            segments, options, args.out, media_dir=args.media, workers=max(1, args.workers),
            cache_dir=args.cache, text_adapter=adapter,
        )  # fmt: skip
    except (DatasetError, AdapterError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    bad = {**{p.split(": ", 1)[0]: p.split(": ", 1)[-1] for p in problems}, **summary["problems"]}
    print(f"wrote {args.out}: " + ", ".join(f"{k} {v}" for k, v in summary["counts"].items()))
    if bad:
        print(f"skipped {len(bad)} row(s):")
        for where, why in sorted(bad.items())[:50]:
            print(f"  {where}: {why}")
        if len(bad) > 50:
            print(f"  ... and {len(bad) - 50} more")
    return 0


if __name__ == "__main__":
    sys.exit(main())
