"""python -m lab.write_speech_labels --ravdess DIR [--emodb DIR] --out-dir DIR

Writes a labels file per corpus (lab/speech_labels.py) from the corpora's file names:
`ravdess.csv` (the actors of --dev-actors are the dev split, the others train) and `emodb.csv`
(all test: a corpus the model never trains on, for checking). Paths are written relative to the
labels file, so the files stay valid wherever the corpora and the files move together.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lab.speech_labels import corpus_rows, emodb_clip, ravdess_clip, write_speech_labels

DEV_ACTORS = ("15", "16", "17", "18")  # RAVDESS actors kept out of training (two male, two female)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lab.write_speech_labels", description=__doc__.splitlines()[0])
    p.add_argument("--ravdess", type=Path, help="RAVDESS speech folder (Actor_NN/*.flac)")
    p.add_argument("--emodb", type=Path, help="EmoDB folder (*.flac or *.wav)")
    p.add_argument("--out-dir", type=Path, required=True)
    p.add_argument("--dev-actors", nargs="*", default=list(DEV_ACTORS),
                   help="RAVDESS actor numbers of the dev split (default: 15 16 17 18)")  # fmt: skip
    args = p.parse_args(argv)
    if not (args.ravdess or args.emodb):
        print("error: name at least one corpus (--ravdess DIR, --emodb DIR)", file=sys.stderr)
        return 2
    jobs = []
    if args.ravdess:
        dev = [a.zfill(2) for a in args.dev_actors]
        jobs.append(("ravdess", args.ravdess, ravdess_clip, {"dev_speakers": dev}))
    if args.emodb:
        jobs.append(("emodb", args.emodb, emodb_clip, {}))
    for name, folder, rule, kwargs in jobs:
        if not folder.is_dir():
            print(f"error: --{name} {folder} is not a folder", file=sys.stderr)
            return 2
        clips, other = corpus_rows(folder, rule, **kwargs)
        if not clips:
            print(f"error: no file in {folder} is named by the {name} rule", file=sys.stderr)
            return 2
        out = args.out_dir / f"{name}.csv"
        n = write_speech_labels(out, clips)
        note = f" ({len(other)} file(s) not named by the rule, left out)" if other else ""
        print(f"wrote {out}: {n} clips{note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
