"""Several demo-clip streams in one process sharing one engine: does each keep real time?

    python -m benchmarks.multistream [--streams 1 2 4] [--duration S] [--max-wait-ms 2]

Each run replays the demo clip as N streams at once, each paced at real time as a camera and
microphone would deliver it, through realtime.multi (one Session per stream, one engine batched
by engines.batching.SharedEngine, one Whisper, one sentence encoder, one face expression network batched
the same way). Per stream:

- step latency: capture of a step's newest sample to the step's first publication (p50/p95/max);
- lag: how far the stream is behind its media clock when a step is first published (stream
  clock minus the step's end), at p95 and over the last tenth of the run; a replay that cannot
  keep up does not drop, it falls behind, so a growing lag is the sign;
- utterance latency (pause confirmed to result).

A stream keeps real time when its step latency p95 and its end lag both stay under KEEP_S. Per
run: CPU cores used (process CPU time over wall time), the load average before it started (other
programs on the machine), CPU seconds per second of stream media (the cores one stream needs,
which says how many streams a quiet machine can carry), and what the batchers did (mean batch,
waits; faces per network call). Writes benchmarks/results/multistream.json.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.machine import (
    checkpoint_info,
    describe,
    percentiles_ms,
    print_table,
    start_run,
    write_result,
)
from contract import messages
from realtime import native_heap
from realtime.multi import MultiOptions, MultiSession, SharedModels
from realtime.pipeline import Pipeline, PipelineOptions
from realtime.publisher import PublisherOptions
from realtime.session import DEFAULT_CHECKPOINT, InputOptions

KEEP_S = 0.5  # step latency p95 and end lag under this: the stream keeps real time


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class _Probe:
    """Collects one stream's messages and its lag behind the media clock, on its core thread."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.first_latency_s: list[float] = []
        self.lag_s: list[float] = []
        self.utterance_latency_s: list[float] = []
        self.clip_s = 0.0

    def __call__(self, msg: messages.Message) -> None:
        if isinstance(msg, messages.StepMessage) and msg.revision == 0:
            self.first_latency_s.append(msg.latency_ms / 1000)
            self.lag_s.append(self.pipeline.clock.now() - msg.t_end)
            self.clip_s = max(self.clip_s, msg.t_end)
        elif isinstance(msg, messages.UtteranceMessage):
            self.utterance_latency_s.append(msg.latency_ms / 1000)

    def summary(self) -> dict:
        lag = np.asarray(self.lag_s)
        tail = lag[-max(1, len(lag) // 10) :]
        step = percentiles_ms(self.first_latency_s)
        step["max"] = round(1000 * max(self.first_latency_s), 4)
        lag_p95 = float(np.percentile(lag, 95))
        lag_end = float(np.median(tail))
        return {
            "clip_s": round(self.clip_s, 2),
            "steps": len(self.first_latency_s),
            "step_latency_ms": step,
            "lag_s": {
                "p50": round(float(np.median(lag)), 3),
                "p95": round(lag_p95, 3),
                "end": round(lag_end, 3),
                "max": round(float(lag.max()), 3),
            },  # fmt: skip
            "utterances": len(self.utterance_latency_s),
            "utterance_latency_ms": percentiles_ms(self.utterance_latency_s)
            if self.utterance_latency_s
            else None,
            "keeps_realtime": bool(step["p95"] / 1000 < KEEP_S and lag_end < KEEP_S),
        }


def _since(before: dict, after: dict) -> dict:
    """This run's share of the shared expression network's batching (its stats accumulate
    over the runs of one benchmark)."""
    requests = after["requests"] - before["requests"]
    calls = after["network_calls"] - before["network_calls"]
    return {"faces": requests, "network_calls": calls,
            "mean_batch": round(requests / calls, 3) if calls else None}  # fmt: skip


def run(
    n_streams: int, checkpoint: Path, models: SharedModels, duration_s: float | None,
    max_wait_s: float,
) -> dict:  # fmt: skip
    options = MultiOptions(
        inputs=tuple(InputOptions(demo=True) for _ in range(n_streams)),
        engine="onnx", checkpoint=checkpoint,
        publish=PublisherOptions(endpoint="tcp://127.0.0.1:*"),  # a free port per stream
        pipeline=PipelineOptions(duration_s=duration_s), max_wait_s=max_wait_s,
    )  # fmt: skip
    load_before = os.getloadavg()
    faces_before = models.expressions.stats()
    multi = MultiSession(options, models=models)
    probes = [_Probe(s.pipeline) for s in multi.sessions]
    for session, probe in zip(multi.sessions, probes):
        session.pipeline.on_message = probe
    cpu0, t0 = _cpu_s(), time.perf_counter()
    try:
        multi.start()
        multi.wait()
        wall_s = time.perf_counter() - t0
        cpu_s = _cpu_s() - cpu0
    finally:
        multi.stop()
    errors = [s.pipeline.stats.errors for s in multi.sessions]
    media_s = sum(p.clip_s for p in probes)
    return {
        "streams": n_streams,
        "wall_s": round(wall_s, 2),
        "cpu_cores_used": round(cpu_s / wall_s, 2),
        # CPU seconds per second of one stream's media: the cores a stream needs to keep real
        # time, whatever else the machine was doing (contention aside).
        "cpu_cores_per_stream": round(cpu_s / media_s, 3) if media_s else None,
        "load_average_before": [round(x, 2) for x in load_before],
        "engine": multi.shared.engine.describe(),
        "batching": multi.shared.stats(),
        "face_batching": _since(faces_before, models.expressions.stats()),
        "errors": errors,
        "per_stream": [p.summary() for p in probes],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--duration", type=float, default=None,
                        help="seconds of the clip per run (default: all of it, ~64 s)")  # fmt: skip
    parser.add_argument("--max-wait-ms", type=float, default=2.0)
    parser.add_argument("--asr-workers", type=int, default=1,
                        help="Whisper calls run at once across the streams (one: in turn)")
    args = parser.parse_args(argv)
    native_heap.limit_arenas()  # as main.py does, before threads start
    torch.set_num_threads(1)  # as main.py does
    start_run()
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = args.checkpoint or DEFAULT_CHECKPOINT
        if not checkpoint.is_file():  # timing does not depend on the weights
            from msrg.checkpoint import save_checkpoint
            from msrg.model import MSRG

            torch.manual_seed(0)
            checkpoint = save_checkpoint(MSRG().eval(), Path(tmp) / "random.pt")
        from msrg.checkpoint import load_checkpoint

        described = checkpoint_info(checkpoint)

        models = SharedModels.load(load_checkpoint(checkpoint).text_adapter, args.asr_workers)
        results = [
            run(n, checkpoint, models, args.duration, args.max_wait_ms / 1000)
            for n in args.streams
        ]  # fmt: skip
    rows = []
    for r in results:
        for i, s in enumerate(r["per_stream"]):
            u = s["utterance_latency_ms"] or {"p50": "-"}
            rows.append([
                r["streams"], i, s["clip_s"], s["step_latency_ms"]["p50"],
                s["step_latency_ms"]["p95"], s["lag_s"]["p95"], s["lag_s"]["end"], u["p50"],
                "yes" if s["keeps_realtime"] else "NO", r["cpu_cores_used"],
                r["cpu_cores_per_stream"], r["batching"]["mean_batch"],
                r["face_batching"]["mean_batch"],
            ])  # fmt: skip
    m = describe()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"machine: {m['cpu']}, {m['cores']} cores; peak memory {peak_mb:.0f} MB")
    print_table(["streams", "stream", "clip s", "step p50 ms", "p95", "lag p95 s", "lag end s",
                 "utt p50 ms", "real time", "CPU cores", "cores/stream", "mean batch", "face batch"], rows)  # fmt: skip
    path = write_result("multistream", {
        "duration_s": args.duration, "keep_s": KEEP_S,
        "max_wait_ms": args.max_wait_ms, "asr_workers": args.asr_workers, "peak_memory_mb": round(peak_mb), "results": results,
    }, checkpoint=described, engine="onnx, batched across streams", threads=1)  # fmt: skip
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
