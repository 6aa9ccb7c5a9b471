"""Soak: the live pipeline replays the demo clip in a loop for N minutes and reports memory.

    python -m benchmarks.soak [--minutes 30] [--fast] [--tracemalloc] [--checkpoint CKPT]

One session (real extractors, ONNX Runtime engine, ZeroMQ publisher on loopback) replays the
clip paced at real time as a live session (live queues, device-loss checks), or as fast as it
decodes with --fast. Two subscribers are attached the whole time: one drains and counts, one
reads nothing (a stuck dashboard), so the run also shows that a stuck subscriber costs the
pipeline nothing. Every minute: resident memory (RSS), the Python heap (with --tracemalloc),
stream seconds processed, step latency p50/p95 over that minute, and glibc's C heap totals (in use
and held free: a leak grows the first, allocator retention the second; the pipeline gives free
pages back once a minute, realtime/native_heap.py). The verdict is on the PEAK
growth: the largest RSS of minutes 2.. against the end of the first minute (warm-up: models,
caches and queues reach their working size); the target is under 5 %. With --tracemalloc the
largest Python allocation growths by source line between minute 1 and the end go into the JSON.
Appends a run to benchmarks/results/soak-realtime.json (soak.json with --fast).
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np
import psutil
import torch
import zmq

from benchmarks.machine import print_table, start_run, write_result
from contract import messages
from engines import load_engine
from realtime import native_heap
from realtime.extractors import Extractors
from realtime.pipeline import Pipeline, PipelineOptions
from realtime.publisher import Publisher, PublisherOptions
from realtime.session import DEFAULT_CHECKPOINT
from realtime.sources.demo import ensure_demo_clip
from realtime.sources.media_file import MediaFileOptions, MediaFileSource

log = logging.getLogger("benchmarks.soak")
GROWTH_TARGET = 0.05


class Minute:
    """What the core thread reports, collected per minute (on_message runs on the core thread)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latencies_ms: list[float] = []
        self.t_stream_s = 0.0
        self.steps = 0

    def on_message(self, msg: messages.Message) -> None:
        if isinstance(msg, messages.StepMessage) and msg.revision == 0:
            with self.lock:
                self.latencies_ms.append(msg.latency_ms)
                self.t_stream_s = max(self.t_stream_s, msg.t_end)
                self.steps += 1

    def take(self) -> tuple[list[float], float, int]:
        with self.lock:
            out = (self.latencies_ms, self.t_stream_s, self.steps)
            self.latencies_ms = []
            return out


def _drain_forever(sub: zmq.Socket, stop: threading.Event, counts: dict) -> None:
    while not stop.is_set():
        if sub.poll(100):
            while sub.poll(0):
                sub.recv_multipart()
                counts["drained"] += 1


def _top_growth(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, n: int = 12) -> list:
    stats = after.compare_to(before, "lineno")
    return [{"where": str(s.traceback[0]), "growth_kb": round(s.size_diff / 1024, 1),
             "size_kb": round(s.size / 1024, 1), "count_growth": s.count_diff}
            for s in stats[:n]]  # fmt: skip


def soak(minutes: float, realtime: bool, checkpoint: Path, trace: bool = False,
         arena_cap: int | None = None) -> dict:
    """arena_cap: glibc's arena cap the process runs with, for the record (None: its default)."""
    clip = ensure_demo_clip()
    engine = load_engine("onnx", checkpoint)
    extractors = Extractors.for_checkpoint(checkpoint)
    publisher = Publisher(PublisherOptions(endpoint="tcp://127.0.0.1:*"))
    ctx = zmq.Context.instance()
    stuck = ctx.socket(zmq.SUB)  # connected, subscribed, never read
    drain = ctx.socket(zmq.SUB)
    for sub in (stuck, drain):
        sub.setsockopt(zmq.SUBSCRIBE, b"msrg.")
        sub.setsockopt(zmq.LINGER, 0)
        sub.connect(publisher.endpoint)
    stop = threading.Event()
    counts = {"drained": 0}
    drainer = threading.Thread(target=_drain_forever, args=(drain, stop, counts), daemon=True)
    drainer.start()
    # Enough loops for the run at any speed; the run is ended by time, not by the clip.
    source = MediaFileSource(MediaFileOptions(clip, realtime=realtime, loops=10_000))
    minute = Minute()
    options = PipelineOptions()
    pipeline = Pipeline(options, [source], engine, extractors, publisher=publisher,
                        live=realtime, on_message=minute.on_message)  # fmt: skip
    process = psutil.Process()
    rows: list[dict] = []
    snapshot_1 = None
    if trace:
        tracemalloc.start(1)
    t0 = time.monotonic()
    pipeline.start()
    try:
        for k in range(1, int(np.ceil(minutes)) + 1):
            end = t0 + min(k, minutes) * 60
            while time.monotonic() < end and not pipeline.finished.is_set():
                time.sleep(1.0)
            latencies, t_stream_s, steps = minute.take()
            row = {
                "minute": k, "rss_mb": round(process.memory_info().rss / 2**20, 1),
                "stream_s": round(t_stream_s, 1), "steps": steps,
                "step_latency_p50_ms": round(float(np.percentile(latencies, 50)), 1)
                if latencies else None,
                "step_latency_p95_ms": round(float(np.percentile(latencies, 95)), 1)
                if latencies else None,
                "errors": pipeline.stats.errors,
                # Backlog: items the core thread has not taken yet, final transcripts waiting
                # for Whisper. Memory that tracks these is work queued on a slow machine.
                "core_queue": pipeline._core_q.qsize(),
                "asr_finals_waiting": len(pipeline._asr._inbox._finals),
                "load_1min": round(os.getloadavg()[0], 2),
            }  # fmt: skip
            heap = native_heap.usage()  # glibc's totals: in use (a leak) vs held free
            if heap is not None:
                row["c_heap_in_use_mb"], row["c_heap_free_mb"] = heap["in_use"], heap["free"]
                row["c_heap_arenas"] = native_heap.arena_count()
            if trace:
                row["python_heap_mb"] = round(tracemalloc.get_traced_memory()[0] / 2**20, 1)
                if k == 1:
                    snapshot_1 = tracemalloc.take_snapshot()
            rows.append(row)
            log.info("minute %d: %s", k, row)
            if pipeline.finished.is_set():
                log.error("the pipeline ended early: %s", pipeline.stats.last_error)
                break
        top_growth = (_top_growth(snapshot_1, tracemalloc.take_snapshot())
                      if snapshot_1 is not None else None)  # fmt: skip
    finally:
        if trace:
            tracemalloc.stop()
        pipeline.stop()
        stop.set()
        drainer.join(2.0)
        publisher.close()
        stuck.close()
        drain.close()
    warm = rows[0]["rss_mb"]
    later = rows[1:]
    peak = max(later, key=lambda r: r["rss_mb"]) if later else None
    growth = (peak["rss_mb"] - warm) / warm if peak else None
    final = (rows[-1]["rss_mb"] - warm) / warm if later else None
    wall_s = time.monotonic() - t0
    return {
        "mode": "realtime" if realtime else "fast", "minutes": minutes,
        "malloc_arena_max": arena_cap,  # None: glibc's default (8 arenas per core)
        "wall_s": round(wall_s, 1), "stream_s": rows[-1]["stream_s"],
        "speed_x_realtime": round(rows[-1]["stream_s"] / wall_s, 2),
        "rss_after_first_minute_mb": warm,
        "peak_rss_growth": None if growth is None else round(growth, 4),
        "peak_minute": peak["minute"] if peak else None,
        "final_rss_growth": None if final is None else round(final, 4),
        "growth_target": GROWTH_TARGET,
        "verdict": None if growth is None else ("within" if growth < GROWTH_TARGET else "OVER"),
        "tracemalloc_top_growth": top_growth,
        "messages_drained_by_reader": counts["drained"],
        "stuck_subscriber": "connected for the whole run, read nothing",
        "errors": pipeline.stats.errors, "last_error": pipeline.stats.last_error,
        "per_minute": rows,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--fast", action="store_true",
                        help="replay as fast as it decodes (default: paced at real time, live)")
    parser.add_argument("--tracemalloc", action="store_true",
                        help="trace Python allocations: heap per minute, largest growths")
    parser.add_argument("--name", default=None,
                        help="result file name (default: soak-realtime, or soak with --fast)")
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--glibc-arenas", action="store_true",
                        help="leave glibc's arena count at its default (main.py caps it at 2)")
    args = parser.parse_args(argv)
    if not args.glibc_arenas:
        native_heap.limit_arenas()  # as main.py does, before threads start
    env_cap = os.environ.get("MALLOC_ARENA_MAX")  # wins over limit_arenas, as in main.py
    arena_cap = int(env_cap) if env_cap else None if args.glibc_arenas else native_heap.DEFAULT_ARENAS
    if args.minutes <= 0:
        parser.error("--minutes must be > 0")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(1)
    run = start_run()
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = args.checkpoint or DEFAULT_CHECKPOINT
        if not checkpoint.is_file():  # memory and speed do not depend on the weights
            from msrg.checkpoint import save_checkpoint
            from msrg.model import MSRG

            torch.manual_seed(0)
            checkpoint = save_checkpoint(MSRG().eval(), Path(tmp) / "random.pt")
        result = soak(args.minutes, not args.fast, checkpoint, trace=args.tracemalloc,
                      arena_cap=arena_cap)
        name = args.name or ("soak" if result["mode"] == "fast" else "soak-realtime")
        path = write_result(name, result, checkpoint=checkpoint, engine="onnx", threads=1)
    m = run["machine"]
    print(f"machine: {m['cpu']}, {m['cores']} cores; {result['mode']} replay, "
          f"{result['speed_x_realtime']}x real time")  # fmt: skip
    print_table(["minute", "RSS MB", "stream s", "steps", "latency p50 ms", "p95 ms", "errors",
                 "core queue", "load"],
                [[r["minute"], r["rss_mb"], r["stream_s"], r["steps"], r["step_latency_p50_ms"],
                  r["step_latency_p95_ms"], r["errors"], r.get("core_queue"), r.get("load_1min")]
                 for r in result["per_minute"]])  # fmt: skip
    growth = result["peak_rss_growth"]
    if growth is not None:
        print(f"peak RSS growth after the first minute: {growth:+.1%} at minute "
              f"{result['peak_minute']} ({result['verdict']} the 5% target); at the end "
              f"{result['final_rss_growth']:+.1%}")  # fmt: skip
    for item in result["tracemalloc_top_growth"] or []:
        print(f"  python heap {item['growth_kb']:+.1f} kB  {item['where']}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
