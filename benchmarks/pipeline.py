"""The live pipeline on the demo clip: step and utterance latency, replay speed, CPU, memory.

    python -m benchmarks.pipeline [--checkpoint CKPT] [--modes realtime fast]

realtime: the clip paced at real time, as a camera and microphone would deliver it; step latency
is capture of a step's newest sample to its first publication, utterance latency is the pause
being detected to the utterance result. fast: the clip replayed as fast as possible; speed is
clip seconds per wall second. Both also give the live curve's metrics over the clip's utterances
(msrg/curve.py; no labels: saturation, jitter, last step's sign against SIM's final). Writes
benchmarks/results/pipeline.json.
"""

from __future__ import annotations

import argparse
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
from msrg.curve import curve_metrics
from realtime import native_heap
from realtime.extractors import Extractors
from realtime.pipeline import PipelineOptions
from realtime.publisher import PublisherOptions
from realtime.session import DEFAULT_CHECKPOINT, InputOptions, Session, SessionOptions
from realtime.sources.demo import ensure_demo_clip


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def demo_curve(got: list[messages.Message]) -> dict[str, float]:
    """Curve metrics (msrg/curve.py) of the published steps: each utterance's final step versions
    with words or voice whose middle lies in the utterance, against its final_intensity."""
    steps = sorted((m for m in got if isinstance(m, messages.StepMessage) and m.final),
                   key=lambda m: m.seq)  # fmt: skip
    utts = [m for m in got if isinstance(m, messages.UtteranceMessage)]
    curves = [
        np.array([s.intensity for s in steps
                  if u.t_start <= (s.t_start + s.t_end) / 2 <= u.t_end
                  and (s.present.text or s.present.audio)])
        for u in utts
    ]  # fmt: skip
    metrics = curve_metrics(curves, np.array([u.final_intensity for u in utts]))
    return {k: round(float(v), 4) for k, v in metrics.items()}


def run_mode(
    mode: str, clip: Path, checkpoint: Path, extractors: Extractors, port: int,
    pipeline: PipelineOptions | None = None,
) -> dict:  # fmt: skip
    """One run of the clip; `pipeline` None: the live defaults (benchmarks.pipeline_ab calls it
    with the five arguments every build since it was written accepts)."""
    pipeline = pipeline or PipelineOptions()
    inputs = InputOptions(video=clip, realtime=mode == "realtime")
    options = SessionOptions(
        inputs=inputs, engine="onnx", checkpoint=checkpoint,
        publish=PublisherOptions(endpoint=f"tcp://127.0.0.1:{port}"), pipeline=pipeline,
    )  # fmt: skip
    session = Session(options, extractors=extractors)
    got: list[messages.Message] = []
    session.pipeline.on_message = got.append
    cpu0, t0 = _cpu_s(), time.perf_counter()
    session.start()
    session.pipeline.wait()
    wall_s = time.perf_counter() - t0
    cpu_s = _cpu_s() - cpu0
    session.stop()
    steps = [m for m in got if isinstance(m, messages.StepMessage)]
    first = [m.latency_ms / 1000 for m in steps if m.revision == 0]
    utts = [m.latency_ms / 1000 for m in got if isinstance(m, messages.UtteranceMessage)]
    clip_s = max(m.t_end for m in steps)
    return {
        "clip_s": round(clip_s, 2),
        "wall_s": round(wall_s, 2),
        "speed_x_realtime": round(clip_s / wall_s, 2),
        "cpu_cores_used": round(cpu_s / wall_s, 2),
        "steps": len({m.seq for m in steps}),
        "step_publications": len(steps),
        "step_latency_ms": percentiles_ms(first),
        "utterances": len(utts),
        "utterance_latency_ms": percentiles_ms(utts) if utts else None,
        "curve": demo_curve(got),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--modes", nargs="+", default=["realtime", "fast"])
    parser.add_argument("--no-text-hold", action="store_true",
                        help="words count only while spoken (PipelineOptions.text_hold=False)")  # fmt: skip
    args = parser.parse_args(argv)
    pipeline = PipelineOptions(text_hold=not args.no_text_hold)
    native_heap.limit_arenas()  # as main.py does, before threads start
    torch.set_num_threads(1)
    start_run()
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = args.checkpoint or DEFAULT_CHECKPOINT
        if not checkpoint.is_file():  # latency does not depend on the weights
            from msrg.checkpoint import save_checkpoint
            from msrg.model import MSRG

            torch.manual_seed(0)
            checkpoint = save_checkpoint(MSRG().eval(), Path(tmp) / "random.pt")
        described = checkpoint_info(checkpoint)
        clip = ensure_demo_clip()
        extractors = Extractors.for_checkpoint(checkpoint)
        results = {}
        for i, mode in enumerate(args.modes):
            results[mode] = run_mode(mode, clip, checkpoint, extractors, 5610 + i, pipeline)
    rows = []
    for mode, r in results.items():
        u = r["utterance_latency_ms"] or {"p50": "-", "p95": "-"}
        s = r["step_latency_ms"]
        rows.append([mode, r["clip_s"], r["speed_x_realtime"], s["p50"], s["p95"], s["p99"],
                     u["p50"], u["p95"], r["cpu_cores_used"], r["utterances"]])  # fmt: skip
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"machine: {describe()['cpu']}, {describe()['cores']} cores; peak memory {peak_mb:.0f} MB"
    )
    print_table(["mode", "clip s", "x realtime", "step p50 ms", "p95", "p99", "utt p50 ms", "utt p95",
                 "CPU cores", "utterances"], rows)  # fmt: skip
    # text_hold: words held through gaps shorter than the pause (the default; --no-text-hold).
    path = write_result("pipeline", {"peak_memory_mb": round(peak_mb), "results": results,
                                     "text_hold": pipeline.text_hold},
                        checkpoint=described, engine="onnx", threads=1)  # fmt: skip
    print_table(["mode", "saturated %", "jitter", "sign agree %", "decided", "speech steps"],
                [[mode, round(100 * r["curve"].get("saturation", float("nan")), 1),
                  r["curve"].get("jitter"), round(100 * r["curve"].get("sign_agreement", float("nan")), 1),
                  r["curve"].get("decided"), r["curve"].get("speech_steps")]
                 for mode, r in results.items()])  # fmt: skip
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
