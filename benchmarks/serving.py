"""Many streams against one Triton server: throughput and per-step latency.

    python -m benchmarks.serving [--checkpoint CKPT] [--streams 1 8 32 64] [--seconds 4]

Starts the bundled Triton server (engines/triton_server.py) on a loopback port with a `cpu`
repository written for the checkpoint, then for each N runs N client threads, one stream each
(B = 1 state, its own sequence), stepping back to back through one TritonEngine for `seconds`.
Reports stream-steps per second in all and per-step latency p50/p95 (one `engine.step` call,
gRPC round trip included). In the same run, the reference: in-process ONNX Runtime stepping the
same N streams as one batch per call (the best a single process does without a server).

Closed loop: each stream steps as fast as the server answers. A live stream needs 10 steps/s,
so the number of live 10 Hz streams one server sustains is about (steps/s in all) / 10, as long
as p95 stays well under the 100 ms step period. Writes benchmarks/results/serving.json.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.machine import (
    checkpoint_info,
    percentiles_ms,
    print_table,
    start_run,
    write_result,
)
from engines import StepInputs, load_engine

log = logging.getLogger("benchmarks.serving")
STEP_HZ = 10.0  # live step rate (100 ms hop)


@dataclass(frozen=True)
class BenchOptions:
    checkpoint: Path | None
    streams: tuple[int, ...] = (1, 8, 32, 64)
    seconds: float = 4.0
    instances: int = 1  # server model instances (one ONNX Runtime thread each)


def _inputs(config, batch: int, n: int = 64) -> list[StepInputs]:  # noqa: ANN001
    rng = np.random.default_rng(0)
    return [
        StepInputs(
            rng.standard_normal((batch, config.text_dim)),
            rng.standard_normal((batch, config.audio_dim)),
            rng.standard_normal((batch, config.visual_dim)),
            np.ones((batch, 3), np.float32),
        )
        for _ in range(n)
    ]


def triton_row(engine, n_streams: int, seconds: float) -> dict:  # noqa: ANN001
    inputs = _inputs(engine.config, 1)
    latencies: list[list[float]] = [[] for _ in range(n_streams)]
    stop = threading.Event()
    errors: list[BaseException] = []

    def drive(s: int) -> None:
        state = engine.initial_state(1)
        try:
            k = 0
            while not stop.is_set():
                t0 = time.perf_counter()
                _, state = engine.step(state, inputs[k % len(inputs)])
                latencies[s].append(time.perf_counter() - t0)
                k += 1
        except BaseException as exc:  # noqa: BLE001 - reported after the run
            errors.append(exc)
        finally:
            engine.close(state)

    threads = [threading.Thread(target=drive, args=(s,), daemon=True) for s in range(n_streams)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join(timeout=30)
    wall = time.perf_counter() - t0
    if errors:
        raise errors[0]
    # The first steps of each stream include connection and sequence set-up: drop them.
    samples = [x for lat in latencies for x in lat[3:]]
    total = sum(len(lat) for lat in latencies)
    return {"engine": "triton", "streams": n_streams, "steps_per_s": round(total / wall, 1),
            **percentiles_ms(samples)}  # fmt: skip


def onnx_row(engine, n_streams: int, seconds: float) -> dict:  # noqa: ANN001
    inputs = _inputs(engine.config, n_streams)
    state = engine.initial_state(n_streams)
    samples = []
    t_end = time.perf_counter() + seconds
    k = 0
    while time.perf_counter() < t_end:
        t0 = time.perf_counter()
        _, state = engine.step(state, inputs[k % len(inputs)])
        samples.append(time.perf_counter() - t0)
        k += 1
    steps_per_s = n_streams * len(samples) / sum(samples)
    return {"engine": "onnx in-process (B = streams)", "streams": n_streams,
            "steps_per_s": round(steps_per_s, 1), **percentiles_ms(samples)}  # fmt: skip


def run(options: BenchOptions) -> dict:
    import torch

    from engines.triton_repo import RepoOptions, write_repository
    from engines.triton_server import BundledServer, ServerOptions, free_port
    from msrg.checkpoint import save_checkpoint
    from msrg.config import MSRGConfig
    from msrg.model import MSRG

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="bench-triton-") as tmp:
        ckpt = options.checkpoint
        if ckpt is None:  # latency does not depend on the weights
            torch.manual_seed(0)
            ckpt = save_checkpoint(MSRG(MSRGConfig()).eval(), Path(tmp) / "msrg.pt")
        described = checkpoint_info(ckpt)
        repo = write_repository(RepoOptions(ckpt, Path(tmp) / "repo", "cpu",
                                            instances=options.instances, cache_dir=Path(tmp)))
        onnx = load_engine("onnx", ckpt, cache_dir=Path(tmp))
        rows = []
        server = BundledServer(ServerOptions(repo, grpc_port=free_port()))
        with server as url:
            engine = load_engine("triton", ckpt, triton_url=url)
            for n in options.streams:
                rows.append(triton_row(engine, n, options.seconds))
                rows.append(onnx_row(onnx, n, options.seconds))
                log.warning("%d streams: %s", n, rows[-2])
    # Measured, not extrapolated: the most streams run here whose p95 stayed within half a step
    # and whose throughput covered every stream at the live rate.
    limit_ms = 1000 / STEP_HZ / 2
    within = [r for r in rows if r["engine"] == "triton" and r["p95"] < limit_ms
              and r["steps_per_s"] >= r["streams"] * STEP_HZ]  # fmt: skip
    best = max(within, key=lambda r: r["streams"], default=None)
    return {
        "settings": {"streams": list(options.streams), "seconds": options.seconds,
                     "server_instances": options.instances, "repository": "cpu"},
        "checkpoint": described,
        "rows": rows,
        "p95_limit_ms": limit_ms,
        "most_streams_within_limit": best["streams"] if best else 0,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Triton serving throughput and latency")
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 8, 32, 64])
    parser.add_argument("--seconds", type=float, default=4.0, help="per setting")
    parser.add_argument("--instances", type=int, default=1, help="server model instances")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    start_run()
    report = run(BenchOptions(args.checkpoint, tuple(args.streams), args.seconds, args.instances))
    headers = ["engine", "streams", "steps/s", "p50 ms", "p95 ms", "p99 ms"]
    print_table(headers, [[r["engine"], r["streams"], r["steps_per_s"], r["p50"], r["p95"],
                           r["p99"]] for r in report["rows"]])  # fmt: skip
    print(f"most streams measured within p95 {report['p95_limit_ms']:.0f} ms at 10 Hz: "
          f"{report['most_streams_within_limit']}")  # fmt: skip
    path = write_result("serving", report, checkpoint=report.pop("checkpoint"),
                        engine="triton (CPU repository) and onnx in-process", threads=1)  # fmt: skip
    log.warning("wrote %s", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
