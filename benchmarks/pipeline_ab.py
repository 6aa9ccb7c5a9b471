"""The demo clip through an older build and this one, alternating, in one run.

    python -m benchmarks.pipeline_ab --old REF [--rounds 2] [--modes fast realtime] [--name NAME]

REF (a commit) is checked out into a temporary git worktree. Each round runs every mode once in
each build, in alternating order, each in a fresh process (`benchmarks.pipeline.run_mode` of
that build, the same checkpoint, engine and extractor settings), so the two builds meet the
same machine state. Records per run: process CPU seconds per clip second, speed, step latency
(paced mode) and utterance latency. Writes benchmarks/results/NAME.json (default pipeline-ab)
with the medians per build and mode, and the new build's change against the old in percent.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.machine import ROOT, checkpoint_info, print_table, start_run, write_result
from realtime.session import DEFAULT_CHECKPOINT

# Run inside a build's own tree: only names both builds have (run_mode, Extractors, the clip).
_ONE_RUN = """
import json, sys, torch
from pathlib import Path
from benchmarks.pipeline import run_mode
from realtime import native_heap
from realtime.extractors import Extractors
from realtime.sources.demo import ensure_demo_clip
getattr(native_heap, "limit_arenas", lambda: None)()  # what the build's main.py does, if it does
torch.set_num_threads(1)
mode, checkpoint, port, out = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
r = run_mode(mode, ensure_demo_clip(), checkpoint, Extractors.for_checkpoint(checkpoint), port)
Path(out).write_text(json.dumps(r))
"""


def _one(build: Path, mode: str, checkpoint: Path, port: int) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        env = {**os.environ, "PYTHONPATH": str(build)}
        done = subprocess.run(
            [sys.executable, "-c", _ONE_RUN, mode, str(checkpoint), str(port), out.name],
            cwd=build, env=env, capture_output=True, text=True, timeout=900,
        )  # fmt: skip
        if done.returncode != 0:
            raise SystemExit(f"error: the {build.name} build failed: {done.stderr.strip()[-500:]}")
        return json.loads(Path(out.name).read_text())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", required=True, metavar="REF", help="the older build's commit")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--modes", nargs="+", default=["fast", "realtime"])
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    parser.add_argument("--name", default="pipeline-ab")
    args = parser.parse_args(argv)
    start_run()
    old_commit = subprocess.run(["git", "rev-parse", args.old], cwd=ROOT, capture_output=True,
                                text=True, check=True).stdout.strip()  # fmt: skip
    checkpoint = args.checkpoint.resolve()
    runs: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "old"
        subprocess.run(["git", "worktree", "add", "--detach", str(old), old_commit], cwd=ROOT,
                       check=True, capture_output=True)  # fmt: skip
        try:
            builds = {"old": old, "new": ROOT}
            for round_ in range(1, args.rounds + 1):
                order = ("old", "new") if round_ % 2 else ("new", "old")
                for mode in args.modes:
                    for build in order:
                        r = _one(builds[build], mode, checkpoint, 5700 + len(runs))
                        runs.append({"build": build, "mode": mode, "round": round_,
                                     "cpu_s_per_clip_s": round(r["cpu_cores_used"] * r["wall_s"]
                                                               / r["clip_s"], 3), **r})  # fmt: skip
                        print(f"round {round_} {mode:8s} {build}: "
                              f"{runs[-1]['cpu_s_per_clip_s']} CPU s per clip s", flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=ROOT,
                           capture_output=True)  # fmt: skip
    summary, rows = {}, []
    for mode in args.modes:
        med = {}
        for build in ("old", "new"):
            mine = [r for r in runs if r["build"] == build and r["mode"] == mode]
            med[build] = {
                "cpu_s_per_clip_s": round(float(np.median([r["cpu_s_per_clip_s"] for r in mine])), 3),
                "step_latency_p50_ms": round(float(np.median(
                    [r["step_latency_ms"]["p50"] for r in mine])), 1),
                "step_latency_p95_ms": round(float(np.median(
                    [r["step_latency_ms"]["p95"] for r in mine])), 1),
                "utterance_latency_p50_ms": round(float(np.median(
                    [r["utterance_latency_ms"]["p50"] for r in mine if r["utterance_latency_ms"]])), 1),
            }  # fmt: skip
        change = 100 * (med["new"]["cpu_s_per_clip_s"] / med["old"]["cpu_s_per_clip_s"] - 1)
        summary[mode] = {"median": med, "cpu_new_vs_old_pct": round(change, 1)}
        for build in ("old", "new"):
            m = med[build]
            rows.append([mode, build, m["cpu_s_per_clip_s"], m["step_latency_p50_ms"],
                         m["step_latency_p95_ms"], m["utterance_latency_p50_ms"]])  # fmt: skip
    print_table(["mode", "build", "CPU s per clip s (median)", "step p50 ms", "step p95 ms",
                 "utterance p50 ms"],
                rows)  # fmt: skip
    path = write_result(args.name, {"old_commit": old_commit, "rounds": args.rounds,
                                    "summary": summary, "runs": runs},
                        checkpoint=checkpoint_info(checkpoint), engine="onnx", threads=1)  # fmt: skip
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
