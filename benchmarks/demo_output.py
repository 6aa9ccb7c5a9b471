"""The README's demo output: run `main.py --demo --headless` and record its utterance lines.

    python -m benchmarks.demo_output [--checkpoint CKPT]

Runs the demo exactly as a user would (a subprocess, the shipped checkpoint unless told
otherwise), keeps every `utterance ...` line it prints, and appends a run to
benchmarks/results/demo.json with the checkpoint's path and digest. `python -m
benchmarks.readme_figures --write` then puts those lines into the README, and the README test
checks they match; rerun both whenever the checkpoint changes.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

from benchmarks.machine import ROOT, load_line, start_run, write_result

DEFAULT_CHECKPOINT = ROOT / "msrg" / "weights" / "msrg-live.pt"
UTTERANCE = re.compile(
    r"^utterance\s+(\d+) \[\s*([\d.]+)-\s*([\d.]+) s\] ([+-][\d.]+) (\w+)\s+(.*)$"
)


def parse(stdout: str) -> list[dict]:
    """The utterance lines of a headless run, verbatim and as fields."""
    found = []
    for line in stdout.splitlines():
        m = UTTERANCE.match(line.rstrip())
        if m:
            found.append({
                "line": line.rstrip(), "id": int(m[1]), "t_start": float(m[2]),
                "t_end": float(m[3]), "intensity": float(m[4]), "label": m[5], "words": m[6],
            })  # fmt: skip
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds")
    args = parser.parse_args(argv)
    if not args.checkpoint.is_file():
        parser.error(f"checkpoint {args.checkpoint} does not exist")
    start_run()
    command = [sys.executable, "main.py", "--demo", "--headless", "--checkpoint",
               str(args.checkpoint)]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=args.timeout)
    utterances = parse(done.stdout)
    if done.returncode != 0 or not utterances:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        print(f"error: the demo run failed (exit {done.returncode}, {len(utterances)} "
              f"utterances): {tail[0]}", file=sys.stderr)  # fmt: skip
        return 1
    for u in utterances:
        print(u["line"])
    print(load_line())
    path = write_result("demo", {"command": "python main.py --demo --headless",
                                 "utterances": utterances},
                        checkpoint=args.checkpoint, engine="auto (main.py's default)")  # fmt: skip
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
