"""affect-monitor: live multimodal sentiment from a webcam and microphone (or a file), published
over ZeroMQ and shown in a dashboard.

    affect-monitor --camera 0            # webcam + default microphone, dashboard
    affect-monitor --demo                # the built-in clip, paced at real time
    affect-monitor --video talk.mp4 --headless --record out/

`affect-monitor` (the console script) and `python main.py` (a checkout) both run `run()` here.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import threading
from pathlib import Path

from realtime import native_heap
from realtime.cli import (
    ENGINE_CHOICES,
    StopOnSignal,
    add_log_flag,
    add_model_flags,
    add_output_flags,
    add_timing_flags,
)
from realtime.extractors.face_mesh import parse_max_faces
from realtime.lsl import LslOptions
from realtime.pipeline import PipelineOptions
from realtime.publisher import DEFAULT_ENDPOINT, PublisherOptions
from realtime.session import (
    InputOptions,
    SessionOptions,
    exit_past_busy_workers,
)

log = logging.getLogger("affect-monitor")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = p.add_argument_group("input (choose one)")
    src.add_argument(
        "--camera", type=int, metavar="INDEX", help="webcam index (with the default microphone)"
    )
    src.add_argument(
        "--mic", metavar="DEVICE", help="microphone name or index (see --list-devices)"
    )
    src.add_argument(
        "--video",
        type=Path,
        metavar="PATH",
        help="any media file: video+audio, video or audio alone",
    )
    src.add_argument(
        "--realtime",
        action="store_true",
        help="pace --video at real time (default: as fast as possible)",
    )
    src.add_argument(
        "--demo", action="store_true", help="the built-in demo clip, paced at real time"
    )
    src.add_argument(
        "--no-mic", action="store_true", help="with --camera: do not open a microphone"
    )
    src.add_argument(
        "--list-devices", action="store_true", help="print cameras and microphones, then exit"
    )
    out = p.add_argument_group("output")
    out.add_argument(
        "--headless", action="store_true", help="no dashboard: print a status line per second"
    )
    add_output_flags(
        out,
        publish_help=f"ZeroMQ PUB endpoint (default {DEFAULT_ENDPOINT})",
        record_help="write messages.jsonl, steps.csv, utterances.csv here",
    )
    out.add_argument(
        "--record-media",
        action="store_true",
        help="with --record: also the raw audio (16 kHz WAV) and video (MKV) of the session",
    )
    out.add_argument(
        "--lsl", action="store_true", help="also publish steps and utterances as LSL streams"
    )
    out.add_argument(
        "--lsl-markers",
        metavar="NAME",
        help="record the LSL marker stream NAME and show it on the plot (see docs/lsl.md)",
    )
    out.add_argument(
        "--lsl-name",
        default=LslOptions.name,
        metavar="NAME",
        help=f"name of the LSL streams, one per monitor (default {LslOptions.name})",
    )
    model = p.add_argument_group("model")
    add_model_flags(model, ENGINE_CHOICES, "auto")
    model.add_argument("--triton-url", metavar="HOST:PORT", help="Triton gRPC (--engine triton)")
    model.add_argument(
        "--asr-model", default="base", metavar="NAME",
        help="speech recogniser: base (default), small or tiny.en (see docs/asr-models.md)",
    )  # fmt: skip
    run = p.add_argument_group("timing")
    add_timing_flags(run)
    run.add_argument(
        "--face-hz",
        type=float,
        default=None,
        help="face analyses per second (default: the step rate; 0: every frame)",
    )
    run.add_argument(
        "--max-faces",
        default="4",
        metavar="N",
        help="faces tracked per frame, 1 to 4, each with an id, readouts and who speaks (default 4)",
    )
    run.add_argument(
        "--partial-asr-s",
        type=float,
        default=0.0,
        help="transcribe growing speech every S s (0: at pauses only)",
    )
    readouts = p.add_argument_group("face and voice readouts")
    readouts.add_argument(
        "--baseline-s",
        default="20",
        metavar="SECONDS",
        help="seconds of face and of speech for the per-person baseline (default 20; 0: off)",
    )
    readouts.add_argument(
        "--baseline",
        type=Path,
        metavar="FILE",
        help="use a recording's baseline.json instead of measuring one (replay)",
    )
    add_log_flag(p)
    return p


def options_from(args: argparse.Namespace) -> SessionOptions:
    """Validate once; a ValueError here is a usage error with a one-line message."""
    inputs = InputOptions(camera=args.camera, mic=args.mic, video=args.video, demo=args.demo,
                          realtime=args.realtime, use_mic=not args.no_mic)  # fmt: skip
    pipeline = PipelineOptions(step_hz=args.step_hz, pause_ms=args.pause_ms, duration_s=args.duration,
                               text_hold=not args.no_text_hold,
                               partial_asr_s=args.partial_asr_s, face_hz=args.face_hz,
                               max_faces=parse_max_faces(args.max_faces),
                               baseline_s=_baseline_seconds(args.baseline_s),
                               baseline=_baseline_file(args.baseline, args.step_hz))  # fmt: skip
    if args.partial_asr_s < 0:
        raise ValueError(f"--partial-asr-s must be >= 0, got {args.partial_asr_s}")
    publish = PublisherOptions(
        endpoint=args.publish, curve_keys=args.curve_keys, insecure=args.insecure
    )
    lsl = LslOptions(outlets=args.lsl, markers_from=args.lsl_markers, name=args.lsl_name)
    return SessionOptions(inputs=inputs, engine=args.engine, checkpoint=args.checkpoint,
                          triton_url=args.triton_url, asr_model=args.asr_model,
                          publish=publish, record_dir=args.record,
                          record_media=args.record_media, pipeline=pipeline, lsl=lsl)  # fmt: skip


def _baseline_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"--baseline-s must be a number of seconds, got {text!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"--baseline-s must be >= 0 seconds (0 turns the baseline off), got {text}")
    return value


def _baseline_file(path: Path | None, step_hz: float) -> dict | None:
    """A recording's baseline.json, checked now (before models load); None without --baseline."""
    if path is None:
        return None
    import json

    from realtime.baseline import Baseline

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        Baseline.from_json(data, 1.0 / step_hz if step_hz > 0 else 0.1)
    except OSError as exc:
        raise ValueError(f"--baseline {path}: cannot read it ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"--baseline {path}: not JSON ({exc.msg}, line {exc.lineno})") from None
    except ValueError as exc:
        raise ValueError(f"--baseline {path}: {exc}") from None
    return data


def main(argv: list[str] | None = None) -> int:
    native_heap.limit_arenas()  # before any thread starts (realtime/native_heap.py)
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.list_devices:
        from realtime.sources.devices import describe_devices

        print(describe_devices())
        return 0
    try:
        options = options_from(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    dashboard = _dashboard_wanted(args)  # first: it may probe Qt in a child process

    import torch

    # One intra-op thread per library: the extractors, ASR and the engine already run in
    # parallel threads, and torch's own pool of two threads makes them wait on each other.
    torch.set_num_threads(1)
    from realtime.session import Session, SessionError, console_line

    preview = None
    if dashboard and options.inputs.camera is not None:
        from ui.frame_slot import FrameSlot

        preview = FrameSlot()  # the camera preview: only when capture runs in this process
    signals = StopOnSignal().install()  # before the models load
    stop = signals.stop
    try:
        session = Session(options, frame_sink=preview.push if preview else None)
        signals.loading = False
        if not dashboard:
            session.pipeline.on_message = _print_utterance
        session.start()
    except SessionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        log.info("stopped before the session started")
        return 130
    try:
        if dashboard:
            _run_dashboard(session, stop, preview)
        else:
            while not stop.is_set() and not session.pipeline.wait(1.0):
                print(console_line(session.pipeline), flush=True)
            print(console_line(session.pipeline), flush=True)
    finally:
        session.stop()
    s = session.pipeline.stats
    log.info("session %s ended: %d steps, %d utterances, %d errors", options.pipeline.session,
             s.steps_published, s.utterances_published, s.errors)  # fmt: skip
    return 0


def _print_utterance(msg) -> None:
    """Headless: each utterance result on its own line, between the status lines."""
    from contract.messages import UtteranceMessage

    if isinstance(msg, UtteranceMessage):
        print(f"utterance {msg.utterance_id:3d} [{msg.t_start:6.1f}-{msg.t_end:6.1f} s] "
              f"{msg.final_intensity:+.2f} {msg.label:<8} {msg.transcript}", flush=True)  # fmt: skip


def _dashboard_wanted(args: argparse.Namespace) -> bool:
    """Whether to open the dashboard; says in one line why not when there is no screen."""
    if args.headless:
        return False
    from ui.app import display_available

    if not display_available():
        log.warning("no display found: running headless (use --headless to silence this line)")
        return False
    # Qt aborts the whole process (SIGABRT) when it cannot load its platform plugin or reach the
    # display; ask a child process first, before any model loads.
    from ui.display_probe import probe_display

    platform, problem = probe_display()
    if problem is not None:
        log.warning("dashboard unavailable: %s; running headless", problem)
        return False
    log.info("dashboard: Qt platform %s", platform)
    return True


def _run_dashboard(session, stop: threading.Event, preview) -> None:
    from ui.app import DashboardOptions, run_dashboard

    def should_quit() -> bool:
        return stop.is_set() or session.pipeline.finished.is_set()

    run_dashboard(
        DashboardOptions(connect=session.endpoint), preview=preview, should_quit=should_quit
    )


def run() -> None:
    """The console script's entry: main(), then exit past a Whisper pass still running."""
    code = main()
    exit_past_busy_workers(code)
    sys.exit(code)


if __name__ == "__main__":
    run()
