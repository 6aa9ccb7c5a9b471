"""What every benchmark records beside its figures, and the result files; shared by all of them.

A benchmark calls `start_run()` before it measures (load average, date, git commit) and
`write_result(name, payload, checkpoint=..., engine=..., threads=...)` at the end. The result file
benchmarks/results/NAME.json keeps history: `{"benchmark": NAME, "runs": [...]}`, oldest first,
each run carrying its own date, machine, commit, load before and after, and figures. A run whose
load average (1 min, before or after) exceeded the core count is marked `busy`, in the JSON and
in the line `print_table` prints under its table, so a figure from a loaded machine says so.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = Path(__file__).resolve().parent / "results"

_run: dict | None = None  # the run in progress (start_run)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def vector_isa() -> str:
    """The widest x86 vector extension the CPU reports ('avx512', 'avx2', ...; '' if unknown).
    Two hosts that both call themselves "AMD EPYC", 2 cores, ran Whisper at a real-time factor
    of 0.16 and 0.43; a run records this so that such hosts can be told apart."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                for name, flag in (("avx512", "avx512f"), ("avx2", "avx2"), ("avx", "avx"),
                                   ("sse4.2", "sse4_2")):  # fmt: skip
                    if flag in flags:
                        return name
                return "no avx"
    except OSError:
        pass
    return ""


def gpu_name() -> str:
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
    except Exception:  # a broken CUDA install must not stop a CPU benchmark
        pass
    return "none"


def describe() -> dict:
    """The machine: CPU model, cores, GPU, OS, Python."""
    return {
        "cpu": cpu_model(),
        "isa": vector_isa(),
        "cores": os.cpu_count(),
        "gpu": gpu_name(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages (zeros where the OS has none)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return [0.0, 0.0, 0.0]


def git_commit() -> str:
    """HEAD of the repository the benchmark ran from, with '-dirty' for uncommitted changes."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT,
                              capture_output=True, text=True, timeout=10, check=True)  # fmt: skip
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=ROOT, capture_output=True, text=True, timeout=10)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def checkpoint_info(path: str | Path | dict | None) -> dict | None:
    """Path (relative to the repository when inside it), sha256 and model dims of a checkpoint.
    Call it while a temporary checkpoint still exists; a dict is taken as already described."""
    if path is None or isinstance(path, dict):
        return path
    path = Path(path).resolve()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    try:
        shown = str(path.relative_to(ROOT))
    except ValueError:
        shown = str(path)
    info: dict = {"path": shown, "sha256": digest}
    if not path.is_relative_to(ROOT):
        info["note"] = "outside the repository (a temporary random-init model, or a user's file)"
    try:
        import torch

        config = torch.load(path, map_location="cpu", weights_only=True).get("config", {})
        info["dims"] = {k: v for k, v in config.items() if isinstance(v, int | float | str)}
    except Exception as exc:  # a foreign file is still identified by its digest
        info["dims"] = f"unreadable ({type(exc).__name__})"
    return info


def start_run() -> dict:
    """Begin a run: date, commit, machine and the load average before anything is measured."""
    global _run
    _run = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "git_commit": git_commit(),
        "machine": describe(),
        "load_before": load_average(),
    }
    return _run


def current_run() -> dict:
    return _run if _run is not None else start_run()


def is_busy(load_before: list[float], load_after: list[float], cores: int | None) -> bool:
    return max(load_before[0], load_after[0]) > (cores or 1)


def load_line(run: dict | None = None) -> str:
    """One line on the machine and its load, 'BUSY' when the load exceeded the core count."""
    run = run or current_run()
    after = run.get("load_after") or load_average()
    m = run["machine"]
    busy = is_busy(run["load_before"], after, m["cores"])
    flag = "BUSY: load above the core count, figures are pessimistic" if busy else "not busy"
    return (f"machine: {m['cpu']}, {m['cores']} cores, GPU {m['gpu']}; load average "
            f"{run['load_before'][0]} before, {after[0]} after: {flag}")  # fmt: skip


def percentiles_ms(samples_s: list[float] | np.ndarray) -> dict[str, float]:
    ms = np.asarray(samples_s) * 1000.0
    return {f"p{q}": round(float(np.percentile(ms, q)), 4) for q in (50, 95, 99)}


def read_runs(name: str) -> list[dict]:
    """The runs recorded in NAME.json, oldest first (a file from before the history format is
    one run)."""
    path = RESULTS_DIR / f"{name}.json"
    if not path.is_file():
        return []
    data = json.loads(path.read_text())
    if "runs" in data:
        return list(data["runs"])
    return [data]


def latest(name: str) -> dict:
    runs = read_runs(name)
    if not runs:
        raise FileNotFoundError(f"no runs in {RESULTS_DIR / name}.json; run python -m benchmarks.{name}")
    return runs[-1]


def write_result(
    name: str, payload: dict, checkpoint: str | Path | dict | None = None, engine: str | None = None,
    threads: int | str | None = None,
) -> Path:  # fmt: skip
    """Append this run (metadata + payload) to NAME.json, keeping the earlier runs."""
    run = dict(current_run())
    run["load_after"] = load_average()
    run["busy"] = is_busy(run["load_before"], run["load_after"], run["machine"]["cores"])
    if threads is None:
        try:
            import torch

            threads = torch.get_num_threads()
        except ImportError:
            threads = None
    run["threads"] = threads
    if engine is not None:
        run["engine"] = engine
    if checkpoint is not None:
        run["checkpoint"] = checkpoint_info(checkpoint)
    described = run["machine"]
    run.update(payload)
    if isinstance(payload.get("machine"), dict):  # a benchmark's own machine facts add to ours
        run["machine"] = {**described, **payload["machine"]}
    runs = read_runs(name) + [run]
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"benchmark": name, "runs": runs}, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def print_table(headers: list[str], rows: list[list]) -> None:
    """The figures, then one line on the machine and its load (BUSY when overloaded)."""
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(headers)]
    print(" | ".join(str(h).ljust(w) for h, w in zip(headers, widths)))
    print("-+-".join("-" * w for w in widths))
    for row in rows:
        print(" | ".join(str(c).ljust(w) for c, w in zip(row, widths)))
    print(load_line())
