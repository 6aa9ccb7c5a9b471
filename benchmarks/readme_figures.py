"""The measured figures in README.md and docs/benchmarks.md, printed from benchmarks/results/*.json.

    python -m benchmarks.readme_figures            # print every block
    python -m benchmarks.readme_figures --write    # put them into README.md and docs/benchmarks.md
    python -m benchmarks.readme_figures --check    # exit 1 where either file and the JSON disagree

The README holds one table, the latest run of each benchmark with the machine it ran on, and the
demo's example output; docs/benchmarks.md holds every run of every benchmark. Each block sits
between `<!-- figures:NAME -->` and `<!-- /figures:NAME -->`, so a figure in those places is
always the JSON's; tests/test_readme_figures.py runs the check. After a new benchmark run or a
new checkpoint: rerun the benchmark (or `python -m benchmarks.demo_output`), then `--write`
(`make figures` does both for the demo).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

from benchmarks import figure_tables as ft
from benchmarks.machine import ROOT, read_runs

README = ROOT / "README.md"
DOCS = ROOT / "docs" / "benchmarks.md"
BLOCK = re.compile(r"(<!-- figures:(\w[\w-]*) -->\n)(.*?)(<!-- /figures:\2 -->)", re.S)

# The targets the README states for the monitor; a summary row says whether its run met them.
PIPELINE_TARGETS = {"step_p50_ms": 150.0, "step_p95_ms": 300.0, "utterance_p50_ms": 1000.0,
                    "fast_x_realtime": 3.0}  # fmt: skip


def _runs(name: str) -> list[dict]:
    runs = read_runs(name)
    if not runs:
        raise SystemExit(f"error: benchmarks/results/{name}.json has no runs; run the benchmark")
    return runs


def _profile_runs() -> dict[str, dict]:
    return json.loads((ROOT / "benchmarks" / "results" / "profile_stream.json").read_text())["runs"]


def _every(name: str, render: Callable[[dict], str]) -> Callable[[], str]:
    """Every run of a benchmark, oldest first, each as its own table."""

    def block() -> str:
        runs = _runs(name)
        return "\n\n".join(f"Run {i} of {len(runs)}:\n\n{render(run)}"
                           for i, run in enumerate(runs, 1))  # fmt: skip

    return block


DOC_BLOCKS: dict[str, Callable[[], str]] = {
    "step-latency": _every("step_latency", ft.step_latency),
    "engines": _every("engines", ft.engines),
    "extractors": _every("extractors", ft.extractors),
    "tts-asr": _every("tts_asr", ft.tts_asr),
    "pipeline": lambda: ft.pipeline(_runs("pipeline")),
    "pipeline-ab": lambda: ft.pipeline_ab(_runs("pipeline-ab-session")),
    "profile": lambda: ft.profile(_profile_runs()),
    "multistream": _every("multistream", ft.multistream),
    "dashboard": _every("dashboard", ft.dashboard),
    "serving": _every("serving", ft.serving),
    "soak": lambda: ft.soak(read_runs("soak-realtime")),
    "demo": _every("demo", ft.demo),
}  # fmt: skip


def _met(ok: bool) -> str:
    return "met" if ok else "**missed**"


def _ran_on(run: dict) -> str:
    busy = " (**busy**)" if run.get("busy") else ""
    date = run.get("date") or run.get("machine", {}).get("date") or "?"
    return f"{date[:10]}, {ft.host(run)}{busy}"


def _summary_rows() -> list[list[str]]:
    rows = []
    run = _runs("step_latency")[-1]
    longest = max(run["results"], key=lambda k: int(k.split("=")[1]))
    r = run["results"][longest]
    rows.append(["model step, incremental (`step_latency`)",
                 f"{r['step_ms']['p50']:.2f} ms a step (p50); recomputing {longest.split('=')[1]} "
                 f"steps instead {r['forward_ms']['p50']:.0f} ms ({r['ratio_p50']:.0f}x)",
                 "-", _ran_on(run)])  # fmt: skip
    run = _runs("engines")[-1]
    t = run["targets"]
    rows.append(["engine step, ONNX Runtime, 1 stream, 1 thread (`engines`)",
                 f"{t['onnx_b1_p50_ms']:.3f} ms (p50), {t['onnx_b1_speedup_vs_eager']:.1f}x eager",
                 f"p50 < {t['onnx_b1_p50_target_ms']} ms and {t['onnx_b1_speedup_target']:.0f}x "
                 f"eager: {_met(t['met'])}", _ran_on(run)])  # fmt: skip
    run = _runs("extractors")[-1]
    share = run["cpu_share_cores"]
    rows.append(["features of one live stream (`extractors`)",
                 f"{share['total']:.2f} of a core (Whisper {share['asr']:.2f} at "
                 f"{run['speech_fraction']:.0%} speech, face {share['face']:.2f}, words "
                 f"{share['words']:.3f})", "-", _ran_on(run)])  # fmt: skip
    run = _runs("tts_asr")[-1]
    wer = "; ".join(f"{100 * s['wer']:.1f} % at {s['words_per_minute']} wpm"
                    + (f" + {s['word_gap_ms']} ms gaps" if s["word_gap_ms"] else "")
                    for s in run["settings"])  # fmt: skip
    rows.append(["Whisper base on espeak-ng speech (`tts_asr`)", f"words wrong: {wer}", "-",
                 _ran_on(run)])  # fmt: skip
    run = _runs("pipeline")[-1]
    paced, fast = run["results"]["realtime"], run["results"]["fast"]
    s, u = paced["step_latency_ms"], paced["utterance_latency_ms"] or {}
    utt = u.get("p50")
    ok = (s["p50"] < PIPELINE_TARGETS["step_p50_ms"] and s["p95"] < PIPELINE_TARGETS["step_p95_ms"],
          utt is not None and utt < PIPELINE_TARGETS["utterance_p50_ms"],
          fast["speed_x_realtime"] >= PIPELINE_TARGETS["fast_x_realtime"])  # fmt: skip
    rows.append(["the demo clip through the pipeline (`pipeline`)",
                 f"paced: step latency {s['p50']:.0f} / {s['p95']:.0f} ms (p50 / p95), utterance "
                 f"result {'-' if utt is None else f'{utt / 1000:.2f} s'} after the pause (p50), "
                 f"{paced['cpu_cores_used']:.2f} of a core; fast replay "
                 f"{fast['speed_x_realtime']:.2f}x real time",
                 f"step < 150 / 300 ms: {_met(ok[0])}; utterance < 1 s: {_met(ok[1])}; "
                 f"fast >= 3x: {_met(ok[2])}", _ran_on(run)])  # fmt: skip
    runs = _profile_runs()
    name = list(runs)[-1]
    prof = runs[name]
    top = max(prof["components"], key=prof["components"].get)
    rows.append(["CPU per component of one live stream (`profile_stream`)",
                 f"{prof['total_cores']:.3f} of a core, {top} {prof['components'][top]:.3f}; "
                 f"kept real time: {'yes' if prof['kept_up'] else 'no'}", "-",
                 _ran_on(prof)])  # fmt: skip
    run = [r for r in _runs("multistream") if r.get("asr_workers", 1) == 1][-1]
    most = max(run["results"], key=lambda r: r["streams"])
    per = most["per_stream"]
    keep = sum(p["keeps_realtime"] for p in per)
    p95 = max(p["step_latency_ms"]["p95"] for p in per)
    rows.append(["several streams in one process (`multistream`)",
                 f"{most['streams']} streams: {keep} of {len(per)} keep real time, step latency "
                 f"p95 up to {p95:.0f} ms, {most['cpu_cores_used']:.2f} cores",
                 f"step p95 and lag < {run['keep_s']} s: {_met(keep == len(per))}",
                 _ran_on(run)])  # fmt: skip
    run = _runs("dashboard")[-1]
    t = run["targets"]
    rows.append(["dashboard, offscreen (`dashboard`)",
                 f"frame time p95 {run['frame_ms_steady']['p95']:.1f} ms steady, "
                 f"{run['frame_ms_burst']['p95']:.1f} ms in bursts; message to screen p95 "
                 f"{run['lag_ms']['p95']:.0f} ms",
                 f"frame p95 < {t['frame_p95_ms']:.0f} ms: "
                 f"{_met(max(run['frame_ms_steady']['p95'], run['frame_ms_burst']['p95']) < t['frame_p95_ms'])}"
                 f"; lag < {t['lag_ms']:.0f} ms: {_met(run['lag_ms']['p95'] < t['lag_ms'])}",
                 _ran_on(run)])  # fmt: skip
    run = _runs("serving")[-1]
    limit = run.get("p95_limit_ms", 50.0)
    within = {e: max((r["streams"] for r in run["rows"] if r["engine"] == e and r["p95"] < limit
                      and r["steps_per_s"] >= 10 * r["streams"]), default=0)
              for e in ("triton", "onnx in-process (B = streams)")}  # fmt: skip
    rows.append(["many streams through Triton, CPU (`serving`)",
                 f"{within['triton']} streams at 10 Hz within p95 {limit:.0f} ms "
                 f"(ONNX Runtime in-process: {within['onnx in-process (B = streams)']})", "-",
                 _ran_on(run)])  # fmt: skip
    soaks = [r for r in read_runs("soak-realtime") if r.get("peak_rss_growth") is not None]
    if soaks:
        run = soaks[-1]
        rows.append(["memory over a paced session (`soak`)",
                     f"{run['minutes']:.0f} min: resident memory peak {run['peak_rss_growth']:+.1%}"
                     f" after the first minute, {run['errors']} errors",
                     f"< {run['growth_target']:.0%}: {_met(run['verdict'] == 'within')}",
                     _ran_on(run)])  # fmt: skip
    return rows


def summary() -> str:
    """The README's one table: the latest run of each benchmark, and where it ran."""
    return ft.table(["benchmark", "latest run", "target", "ran on"], _summary_rows())


README_BLOCKS: dict[str, Callable[[], str]] = {
    "demo": lambda: ft.demo(_runs("demo")[-1]),
    "figures": summary,
}

FILES: dict[Path, dict[str, Callable[[], str]]] = {README: README_BLOCKS, DOCS: DOC_BLOCKS}


def render(blocks: dict[str, Callable[[], str]]) -> dict[str, str]:
    return {name: fn() for name, fn in blocks.items()}


def blocks_in(text: str) -> dict[str, str]:
    """The text between each pair of markers."""
    return {m[2]: m[3].rstrip("\n") for m in BLOCK.finditer(text)}


def rewrite(text: str, rendered: dict[str, str]) -> str:
    def sub(m: re.Match) -> str:
        body = rendered.get(m[2])
        return m[0] if body is None else f"{m[1]}{body}\n{m[4]}"

    return BLOCK.sub(sub, text)


def differences(path: Path, rendered: dict[str, str]) -> list[str]:
    """One line per block of `path` that is missing, extra or not the JSON's."""
    found = blocks_in(path.read_text(encoding="utf-8"))
    lines = [f"{path.name}: no block {n!r}" for n in rendered if n not in found]
    lines += [f"{path.name}: block {n!r} is not generated" for n in found if n not in rendered]
    lines += [f"{path.name}: block {n!r} differs from the JSON" for n in rendered
              if n in found and found[n] != rendered[n]]  # fmt: skip
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--write", action="store_true", help="rewrite the blocks in both files")
    what.add_argument("--check", action="store_true", help="exit 1 where a file differs")
    args = parser.parse_args(argv)
    bad = []
    for path, blocks in FILES.items():
        rendered = render(blocks)
        if args.write:
            text = path.read_text(encoding="utf-8")
            path.write_text(rewrite(text, rendered), encoding="utf-8")
            print(f"wrote {len(blocks_in(text))} blocks into {path.relative_to(ROOT)}")
        elif args.check:
            bad += differences(path, rendered)
        else:
            for name, body in rendered.items():
                print(f"<!-- figures:{name} -->\n{body}\n<!-- /figures:{name} -->\n")
    for line in bad:
        print(line)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
