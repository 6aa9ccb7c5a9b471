"""Per-step latency of every available engine, in one run so ratios against eager are fair.

    python -m benchmarks.engines [--checkpoint CKPT] [--seconds 2] [--rounds 5]

For each engine, batch size B in (1, 8, 64) and CPU threads in (1, all): p50/p95/p99 of one
`engine.step` call (state carried, inputs pre-built), calls per second and stream-steps per
second (B x calls), and the p50 ratio against eager PyTorch at the same B and threads. Where CUDA
exists, eager on the GPU and TensorRT fp32/fp16 are measured as well. The checkpoint defaults to
the shipped one (msrg/weights/msrg-live.pt); `--checkpoint random` measures a random-init model
of the default configuration instead. The result records the checkpoint's path, digest and dims.

Engines are measured in alternating rounds (eager, onnx, eager, onnx, ...) at each setting, so a
neighbour process that loads the CPU for a while slows every engine alike and the ratios hold.
Appends a run to benchmarks/results/engines.json (machine, load before and after, busy flag).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.machine import checkpoint_info, describe, load_line, start_run, write_result
from engines import Engine, EngineError, StepInputs, load_engine

DEFAULT_CHECKPOINT = Path(__file__).resolve().parent.parent / "msrg" / "weights" / "msrg-live.pt"

log = logging.getLogger("benchmarks.engines")
BATCH_SIZES = (1, 8, 64)
TARGET_P50_MS = 0.3  # ONNX Runtime, B=1, on the 2-core development CPU
TARGET_SPEEDUP = 5.0


@dataclass(frozen=True)
class BenchOptions:
    checkpoint: Path | None
    seconds: float  # measuring time per (engine, B, threads)
    rounds: int  # alternations between engines within those seconds


def machine() -> dict:
    import onnxruntime
    import torch

    return {
        **describe(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
    }


def inputs_pool(engine: Engine, batch: int, n: int = 32) -> list[StepInputs]:
    rng = np.random.default_rng(batch)
    dims = engine.config.dims
    return [
        StepInputs(
            text=rng.standard_normal((batch, dims["text"])),
            audio=rng.standard_normal((batch, dims["audio"])),
            visual=rng.standard_normal((batch, dims["visual"])),
            mask=(rng.random((batch, 3)) > 0.2),
        )
        for _ in range(n)
    ]


def _timed_steps(engine: Engine, batch: int, seconds: float, pool: list[StepInputs]) -> list:
    """(wall, process CPU) seconds per call: on a loaded machine the CPU time still says what a
    step costs, while the wall time also counts the time other processes had the cores."""
    state = engine.initial_state(batch)
    for x in pool[:5]:  # warm-up: first calls allocate
        _, state = engine.step(state, x)
    times = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(times) < 10:
        x = pool[len(times) % len(pool)]
        t0, c0 = time.perf_counter(), time.process_time()
        _, state = engine.step(state, x)
        times.append((time.perf_counter() - t0, time.process_time() - c0))
    return times


def measure(engines: dict[str, Engine], batch: int, options: BenchOptions) -> dict[str, dict]:
    """Alternate the engines over `rounds` rounds; returns one row per engine."""
    pools = {name: inputs_pool(e, batch) for name, e in engines.items()}
    samples: dict[str, list] = {name: [] for name in engines}
    for _ in range(options.rounds):
        for name, engine in engines.items():
            samples[name] += _timed_steps(
                engine, batch, options.seconds / options.rounds, pools[name]
            )
    rows = {}
    for name, times in samples.items():
        ms = np.asarray([t[0] for t in times]) * 1e3
        cpu_ms = np.asarray([t[1] for t in times]) * 1e3
        mean_s = ms.mean() / 1e3
        rows[name] = {
            "p50_ms": round(float(np.percentile(ms, 50)), 4),
            "p95_ms": round(float(np.percentile(ms, 95)), 4),
            "p99_ms": round(float(np.percentile(ms, 99)), 4),
            "cpu_p50_ms": round(float(np.percentile(cpu_ms, 50)), 4),
            "cpu_mean_ms": round(float(cpu_ms.mean()), 4),
            "steps_per_s": round(float(1.0 / mean_s), 1),  # engine.step calls per second
            "stream_steps_per_s": round(float(batch / mean_s), 1),  # B streams per call
            "n": len(times),
        }
    return rows


def cpu_engines(ckpt: Path, threads: int) -> dict[str, Engine]:
    import torch

    torch.set_num_threads(threads)  # eager: process-wide, set before each thread setting
    found = {"eager": load_engine("eager", ckpt, threads=threads)}
    try:
        found["onnx"] = load_engine("onnx", ckpt, threads=threads)
    except EngineError as exc:
        log.warning("onnx not measured: %s", exc)
    return found


def gpu_engines(ckpt: Path, batch: int) -> dict[str, Engine]:
    import torch

    if not torch.cuda.is_available():
        return {}
    from engines.eager import EagerEngine
    from msrg.checkpoint import load_checkpoint

    found: dict[str, Engine] = {
        "eager-cuda": EagerEngine(load_checkpoint(ckpt).model, device="cuda")
    }
    for fp16 in (False, True):
        try:
            engine = load_engine("tensorrt", ckpt, batch_size=batch, fp16=fp16)
            found[engine.name] = engine
        except EngineError as exc:
            log.warning("tensorrt %s not measured: %s", "fp16" if fp16 else "fp32", exc)
    return found


def run(options: BenchOptions) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = options.checkpoint
        if str(ckpt) == "random":
            import torch

            from msrg.checkpoint import save_checkpoint
            from msrg.model import MSRG

            torch.manual_seed(0)
            ckpt = save_checkpoint(MSRG().eval(), Path(tmp) / "bench.pt")
        report: dict = {"machine": machine(), "engines": {}, "targets": {}}
        report["checkpoint"] = checkpoint_info(ckpt)  # while a temporary one still exists
        report["config"] = load_engine("eager", ckpt).config.to_dict()
        all_threads = os.cpu_count() or 1
        thread_settings = sorted({1, all_threads})
        for threads in thread_settings:
            engines = cpu_engines(ckpt, threads)
            for batch in BATCH_SIZES:
                for name, row in measure(engines, batch, options).items():
                    per_batch = report["engines"].setdefault(name, {})
                    per_batch.setdefault(f"B{batch}", {})[f"threads_{threads}"] = row
        for batch in BATCH_SIZES:
            engines = gpu_engines(ckpt, batch)
            for name, row in (measure(engines, batch, options) if engines else {}).items():
                report["engines"].setdefault(name, {}).setdefault(f"B{batch}", {})["gpu"] = row
    add_ratios(report)
    onnx_b1 = report["engines"].get("onnx", {}).get("B1", {}).get("threads_1")
    if onnx_b1:
        report["targets"] = {
            "onnx_b1_p50_ms": onnx_b1["p50_ms"],
            "onnx_b1_p50_target_ms": TARGET_P50_MS,
            "onnx_b1_speedup_vs_eager": onnx_b1["speedup_vs_eager"],
            "onnx_b1_speedup_target": TARGET_SPEEDUP,
            "met": onnx_b1["p50_ms"] < TARGET_P50_MS
            and onnx_b1["speedup_vs_eager"] >= TARGET_SPEEDUP,
            "onnx_b1_cpu_p50_ms": onnx_b1["cpu_p50_ms"],
            "onnx_b1_cpu_speedup_vs_eager": onnx_b1["cpu_speedup_vs_eager"],
            "met_on_cpu_time": onnx_b1["cpu_p50_ms"] < TARGET_P50_MS
            and (onnx_b1["cpu_speedup_vs_eager"] or 0) >= TARGET_SPEEDUP,
        }
    return report


def add_ratios(report: dict) -> None:
    """p50 speed-up against eager measured in this run: CPU rows against eager at the same B and
    threads, GPU rows against eager-cuda at the same B."""
    results = report["engines"]
    for per_batch in results.values():
        for batch, per_setting in per_batch.items():
            for setting, row in per_setting.items():
                base_name = "eager-cuda" if setting == "gpu" else "eager"
                base = results.get(base_name, {}).get(batch, {}).get(setting)
                row["speedup_vs_eager"] = round(base["p50_ms"] / row["p50_ms"], 2) if base else None
                row["cpu_speedup_vs_eager"] = (round(base["cpu_p50_ms"] / row["cpu_p50_ms"], 2)
                                               if base and row["cpu_p50_ms"] > 0 else None)  # fmt: skip


def print_report(report: dict) -> None:
    m = report["machine"]
    print(f"\n{m['cpu']} ({m['cores']} cores), GPU: {m['gpu']}; {m['platform']}")
    header = f"{'engine':<14}{'B':>4}{'threads':>9}{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}"
    header += f"{'steps/s':>11}{'x eager':>9}{'CPU p50':>9}{'x (CPU)':>9}"
    print(header)
    print("-" * len(header))
    for name, per_batch in report["engines"].items():
        for batch, per_setting in per_batch.items():
            for setting, r in per_setting.items():
                ratio = f"{r['speedup_vs_eager']:.1f}" if r["speedup_vs_eager"] else "-"
                cpu_ratio = f"{r['cpu_speedup_vs_eager']:.1f}" if r["cpu_speedup_vs_eager"] else "-"
                print(
                    f"{name:<14}{batch[1:]:>4}{setting.replace('threads_', ''):>9}"
                    f"{r['p50_ms']:>10.3f}{r['p95_ms']:>10.3f}{r['p99_ms']:>10.3f}"
                    f"{r['steps_per_s']:>11.0f}{ratio:>9}{r['cpu_p50_ms']:>9.3f}{cpu_ratio:>9}"
                )
    t = report.get("targets")
    if t:
        verdict = "met" if t["met"] else "MISSED"
        print(
            f"\ntarget (ONNX B=1, 1 thread: p50 < {t['onnx_b1_p50_target_ms']} ms and >= "
            f"{t['onnx_b1_speedup_target']:.0f}x eager): p50 {t['onnx_b1_p50_ms']:.3f} ms, "
            f"{t['onnx_b1_speedup_vs_eager']:.1f}x -> {verdict}; on CPU time: p50 "
            f"{t['onnx_b1_cpu_p50_ms']:.3f} ms, {t['onnx_b1_cpu_speedup_vs_eager']:.1f}x -> "
            f"{'met' if t['met_on_cpu_time'] else 'MISSED'}"
        )
    if m["gpu"] == "none":
        print("GPU figures not yet measured (no CUDA device on this machine)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="engine step latency")
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT,
                        help="default: the shipped checkpoint; 'random': a random-init model")
    parser.add_argument("--seconds", type=float, default=2.0, help="per engine and setting")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if str(args.checkpoint) != "random" and not args.checkpoint.is_file():
        parser.error(f"checkpoint {args.checkpoint} does not exist; pass --checkpoint FILE or random")
    start_run()
    report = run(BenchOptions(args.checkpoint, args.seconds, args.rounds))
    print_report(report)
    print(load_line())
    # write_result adds the machine, load and checkpoint; versions go under "versions".
    checkpoint = report.pop("checkpoint")
    payload = {k: v for k, v in report.items() if k != "machine"}
    payload["versions"] = {k: v for k, v in report["machine"].items() if k not in describe()}
    path = write_result("engines", payload, checkpoint=checkpoint,
                        engine="every available engine (rows)", threads="per row")  # fmt: skip
    log.warning("wrote %s", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
