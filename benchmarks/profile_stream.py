"""Where one live stream's CPU goes: per-component core share of the paced demo, headless.

    python -m benchmarks.profile_stream [--warmup 10] [--seconds 40] [--label NAME]

Runs the demo (the clip paced at real time, as `main.py --demo` does, without a dashboard) and,
over `--seconds` of stream time after `--warmup`, measures CPU time (not wall time, which load
on a shared machine inflates more):

- per component, by wrapping the functions that do each job and summing the calling thread's
  CPU time (`time.thread_time`) spent inside them, exclusive of nested wrapped calls;
- per OS thread, from /proc (psutil): threads the project does not start (FFmpeg's decoder
  threads, OpenCV's pool, openSMILE's own run thread) are added to the component that owns them;
- the remainder of the process's CPU time is "other": the aligner, queues and handoffs between
  threads, the publisher, Python's own overhead.

Shares are core-seconds per second of media the stream got through (0.5 = half a core for a
stream that keeps real time; a stream that falls behind on a loaded machine is still measured
per media second it processed, and flagged). Prints a table and writes
benchmarks/results/profile_stream.json, keyed by `--label` so a previous build's run (the same
script copied into its tree) can sit beside this one's.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import psutil
import torch

from benchmarks.machine import RESULTS_DIR, describe, git_commit, print_table
from realtime import native_heap

KEEP_S = 0.5  # step lag p95 under this: the stream kept real time (as benchmarks/multistream.py)
COMPONENTS = (
    "openSMILE", "VAD", "face detect", "expression net", "video decode", "audio decode",
    "Whisper", "text encoder", "engine", "other",
)  # fmt: skip


class _Meter:
    """Exclusive thread CPU time inside wrapped callables, per component (any thread)."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.owners: dict[int, str] = {}  # OS thread id -> component whose call started it
        self._watch: dict[object, int] = defaultdict(int)  # first calls watched per callable
        self._lock = threading.Lock()
        self._local = threading.local()

    def _enter(self) -> list:
        stack = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        frame = [time.thread_time(), 0.0]  # start, CPU of nested metered calls
        stack.append(frame)
        return stack

    def _leave(self, stack: list, name: str) -> None:
        start, nested = stack.pop()
        spent = time.thread_time() - start
        if stack:
            stack[-1][1] += spent
        with self._lock:
            self.totals[name] += spent - nested
            self.calls[name] += 1

    def wrap(self, owner: object, attr: str, name: str) -> None:
        original = getattr(owner, attr)

        def metered(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            # Native threads a library starts inside its first calls (CTranslate2's worker,
            # OpenCV's pool) belong to the component that started them.
            watch = self._watch[metered] < 3
            before = _tids() if watch else None
            stack = self._enter()
            try:
                return original(*args, **kwargs)
            finally:
                self._leave(stack, name)
                if before is not None:
                    self._watch[metered] += 1
                    for tid in _tids() - before:
                        self.owners.setdefault(tid, name)

        setattr(owner, attr, metered)

    def wrap_generator(self, owner: object, attr: str, name: str) -> None:
        """For generator functions: each step of the generator is metered."""
        original = getattr(owner, attr)
        meter = self

        def metered(*args, **kwargs) -> Iterator:  # noqa: ANN002, ANN003
            inner = original(*args, **kwargs)
            while True:
                stack = meter._enter()
                try:
                    item = next(inner)
                except StopIteration:
                    return
                finally:
                    meter._leave(stack, name)
                yield item

        setattr(owner, attr, metered)

    def snapshot(self) -> dict[str, float]:
        with self._lock:
            return {**self.totals, **{f"calls:{k}": v for k, v in self.calls.items()}}


def instrument(meter: _Meter) -> None:
    """Wrap the leaves of the pipeline's work; names exist in the previous build too."""
    from realtime.extractors import asr, expression_net, face, vad, voice, words
    from realtime.sources import media_file
    from realtime.stepper import StepRunner

    for cls, name in ((voice.VoiceExtractor, "openSMILE"), (vad.SileroVad, "VAD"),
                      (face.FaceExtractor, "face detect"), (asr.SpeechRecognizer, "Whisper"),
                      (expression_net.ExpressionNet, "expression net"),
                      (words.WordEmbedder, "text encoder")):  # fmt: skip
        meter.wrap(cls, "__init__", name)  # loading: only to learn which threads it starts
    meter.wrap(voice.VoiceExtractor, "push", "openSMILE")
    meter.wrap(voice.VoiceExtractor, "flush", "openSMILE")
    meter.wrap(vad.SileroVad, "push", "VAD")
    meter.wrap(face.FaceExtractor, "detect", "face detect")
    meter.wrap(expression_net.ExpressionNet, "predict", "expression net")
    meter.wrap(asr.SpeechRecognizer, "transcribe", "Whisper")
    meter.wrap(words.WordEmbedder, "embed_words", "text encoder")  # "MiniLM" before MPNet shipped
    meter.wrap(words.WordEmbedder, "embed_sentence", "text encoder")
    meter.wrap(StepRunner, "_run", "engine")
    meter.wrap(StepRunner, "utterance", "engine")
    meter.wrap_generator(media_file, "_video_frames", "video decode")
    meter.wrap_generator(media_file, "_audio_blocks", "audio decode")


def _tids() -> set[int]:
    return {int(t) for t in os.listdir("/proc/self/task")}


def _thread_component(name: str) -> str | None:
    """The component a thread the project does not name belongs to (None: 'other')."""
    lowered = name.lower()
    if lowered.startswith(("av:", "h264", "mpeg", "ffmpeg")) or "dec" in lowered:
        return "video decode"
    if "smile" in lowered:  # openSMILE's run loop ("voice-smile")
        return "openSMILE"
    return None


def _threads_cpu() -> dict[int, tuple[str, float]]:
    """OS thread id -> (name, CPU seconds) for every thread of this process."""
    py_names = {t.native_id: t.name for t in threading.enumerate()}
    out = {}
    for t in psutil.Process().threads():
        name = py_names.get(t.id)
        if name is None:
            try:
                name = Path(f"/proc/self/task/{t.id}/comm").read_text().strip()
            except OSError:
                name = "?"
        out[t.id] = (name, t.user_time + t.system_time)
    return out


def _process_cpu() -> float:
    times = psutil.Process().cpu_times()
    return times.user + times.system


def _snapshot(meter: _Meter) -> dict:
    return {
        "meter": meter.snapshot(), "threads": _threads_cpu(), "process": _process_cpu(),
        "python_threads": {t.native_id for t in threading.enumerate()},
    }  # fmt: skip


def _diff(a: dict, b: dict, stream_s: float, owners: dict[int, str]) -> dict:
    """Core-seconds per stream-second, per component, between snapshots a and b."""
    spent = {k: b["meter"].get(k, 0.0) - a["meter"].get(k, 0.0) for k in COMPONENTS}
    native: dict[str, float] = defaultdict(float)
    own: dict[str, float] = defaultdict(float)  # the project's threads, whatever they ran
    for tid, (name, cpu_b) in b["threads"].items():
        cpu_a = a["threads"].get(tid, (name, 0.0))[1]
        component = _thread_component(name)
        if tid in b["python_threads"] and component is None:
            own[name] += cpu_b - cpu_a
            continue  # their work is metered by the wrappers
        component = component or owners.get(tid)
        if component is not None:
            spent[component] += cpu_b - cpu_a
        native[f"{name} ({component or 'other'})"] += cpu_b - cpu_a
    calls = {k: b["meter"].get(f"calls:{k}", 0) - a["meter"].get(f"calls:{k}", 0)
             for k in COMPONENTS if k != "other"}  # fmt: skip
    total = b["process"] - a["process"]
    spent["other"] = max(0.0, total - sum(v for k, v in spent.items() if k != "other"))
    return {
        "total_cores": round(total / stream_s, 4),
        "components": {k: round(v / stream_s, 4) for k, v in spent.items()},
        "calls": calls,  # wrapped calls in the window (generators: items)
        "native_threads": {k: round(v / stream_s, 4) for k, v in sorted(native.items())},
        "project_threads": {k: round(v / stream_s, 4) for k, v in sorted(own.items())},
    }


def profile(warmup_s: float, seconds: float, engine: str) -> dict:
    from realtime.pipeline import PipelineOptions
    from realtime.publisher import PublisherOptions
    from realtime.session import InputOptions, Session, SessionOptions

    meter = _Meter()
    instrument(meter)
    options = SessionOptions(
        inputs=InputOptions(demo=True), engine=engine,
        publish=PublisherOptions(endpoint="tcp://127.0.0.1:*"),
        pipeline=PipelineOptions(duration_s=warmup_s + seconds + 2.0),
    )  # fmt: skip
    session = Session(options)
    lags: list[float] = []  # stream clock minus a step's end, at its first publication
    newest = [0.0]  # media time the published steps have reached
    clock = session.pipeline.clock

    def on_message(msg: object) -> None:
        if type(msg).__name__ == "StepMessage" and msg.revision == 0:  # type: ignore[attr-defined]
            lags.append(clock.now() - msg.t_end)  # type: ignore[attr-defined]
            newest[0] = max(newest[0], msg.t_end)  # type: ignore[attr-defined]

    session.pipeline.on_message = on_message
    load_before = os.getloadavg()
    session.start()
    try:
        _wait_until(clock.now, warmup_s, session.pipeline.finished)
        a, t_a, media_a = _snapshot(meter), clock.now(), newest[0]
        _wait_until(clock.now, warmup_s + seconds, session.pipeline.finished)
        b, t_b, media_b = _snapshot(meter), clock.now(), newest[0]
    finally:
        session.stop()
    load_after = os.getloadavg()
    # A stream that falls behind (growing lag; a live queue would drop its oldest items instead)
    # has work left undone in the window, so its CPU figures understate the cost. Say so.
    pipeline = session.pipeline
    dropped = {k: getattr(q, "dropped", 0) for k, q in (("video", pipeline._video_q),
                                                         ("audio", pipeline._audio_q))}  # fmt: skip
    lag_p95 = float(np.percentile(lags, 95)) if lags else float("inf")
    # Per second of media the stream got through, not of wall time: a stream that falls behind
    # on a loaded machine does less work per wall second, not less per media second.
    media_s = media_b - media_a
    result = _diff(a, b, media_s, meter.owners)
    cores = os.cpu_count() or 1
    result.update({
        "engine": engine, "warmup_s": warmup_s, "wall_s": round(t_b - t_a, 2),
        "stream_s": round(media_s, 2),
        "steps_published": len(lags),
        "step_lag_s_p95": round(lag_p95, 3),
        "dropped": dropped, "kept_up": bool(not any(dropped.values()) and lag_p95 < KEEP_S),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
        "busy": bool(max(load_before[0], load_after[0]) > cores),
    })  # fmt: skip
    return result


def _wait_until(now: Callable[[], float], t_s: float, finished: threading.Event) -> None:
    while now() < t_s and not finished.is_set():
        time.sleep(0.05)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warmup", type=float, default=10.0, help="stream seconds before")
    parser.add_argument("--seconds", type=float, default=40.0, help="stream seconds measured")
    parser.add_argument("--engine", default="onnx")
    parser.add_argument("--label", default="current", help="key of this run in the JSON")
    parser.add_argument("--output", type=Path, default=RESULTS_DIR / "profile_stream.json")
    args = parser.parse_args(argv)
    native_heap.limit_arenas()  # as main.py does, before threads start
    torch.set_num_threads(1)  # as main.py does
    result = profile(args.warmup, args.seconds, args.engine)
    m = describe()
    print(f"machine: {m['cpu']}, {m['cores']} cores; load average before "
          f"{result['load_average_before']}, after {result['load_average_after']}"
          f"{' (BUSY: more load than cores)' if result['busy'] else ''}")  # fmt: skip
    total = result["total_cores"]
    rows = [[k, f"{v:.3f}", f"{100 * v / total:.0f} %" if total else "-"]
            for k, v in sorted(result["components"].items(), key=lambda kv: -kv[1])]  # fmt: skip
    rows.append(["total (process)", f"{total:.3f}", "100 %"])
    print(f"{args.label}: {result['stream_s']} s of media in {result['wall_s']} s after "
          f"{args.warmup} s warm-up; step "
          f"lag p95 {result['step_lag_s_p95']} s; dropped {result['dropped']}"
          f"{'' if result['kept_up'] else ' (fell behind: figures are per media second done)'}")
    print_table(["component", "cores", "share"], rows)
    previous = json.loads(args.output.read_text()) if args.output.is_file() else {}
    runs = previous.get("runs", {})
    runs[args.label] = {
        "machine": m, "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "git_commit": git_commit(), **result,
    }  # fmt: skip
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"runs": runs}, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
