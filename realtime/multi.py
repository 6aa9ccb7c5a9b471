"""Several replayed streams in one process, sharing one engine: `python -m realtime.multi`.

    python -m realtime.multi --demo 4                        # four copies of the demo clip, paced
    python -m realtime.multi --video a.mp4 --video b.mp4 --realtime
    python -m ui --connect tcp://127.0.0.1:5557              # the dashboard on stream 1

Each stream is a whole Session (realtime/session.py): its own sources and stream clock, face
extractor, audio front end (VAD state), ASR worker, core thread, step runner, outputs and session
id. They share what is heavy and safe to share:

- one engine, behind engines.batching.SharedEngine: the streams' concurrent steps run as one
  batched call (ONNX Runtime or eager; TensorRT and Triton are refused in one line);
- one Whisper model: CTranslate2 takes concurrent transcribe calls and runs them in turn;
- one word embedder (the checkpoint's sentence encoder), behind a lock (its prefix cache is a plain OrderedDict);
- one face expression network, batched across streams like the engine
  (realtime/extractors/shared_expression.py); each stream keeps its own face detector.

Publishing: one PUB socket per stream, stream i on the --publish port + i (ipc/inproc: the name
with "-i" appended). Not one shared socket, because subscribers filter by topic prefix and the
topics do not name the session: on one socket the dashboard and every existing subscriber would
mix the streams' steps. Per stream, each of them works unchanged, and no lock is needed (a ZeroMQ
socket is not thread-safe and each stream's core thread publishes). Every message also carries
its stream's session id (a common prefix plus "-s<i>").

This is a separate runner rather than a repeatable main.py --video: the dashboard, camera
preview, LSL and live-device options of main.py have no meaning for N replayed streams.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from engines.base import Engine
from realtime import native_heap
from realtime.cli import (
    StopOnSignal,
    add_log_flag,
    add_model_flags,
    add_output_flags,
    add_timing_flags,
)
from realtime.extractors import Extractors
from realtime.extractors.shared_expression import ExpressionHandle, SharedExpressionNet
from realtime.pipeline import PipelineOptions
from realtime.publisher import DEFAULT_ENDPOINT, PublisherOptions
from realtime.session import (
    DEFAULT_CHECKPOINT,
    InputOptions,
    LoadedModel,
    Session,
    SessionError,
    SessionOptions,
    console_line,
    exit_past_busy_workers,
    load_live_engine,
)

log = logging.getLogger(__name__)

ENGINES = ("onnx", "eager")  # the back-ends a SharedEngine can batch
_TCP_PORT = re.compile(r"^(?P<head>tcp://.+):(?P<port>\d+)$")


def stream_endpoints(endpoint: str, count: int) -> list[str]:
    """One endpoint per stream: tcp ports counted up from the given one, ipc/inproc names
    suffixed; `tcp://HOST:*` lets every stream's socket pick a free port."""
    if count == 1 or endpoint.endswith(":*"):
        return [endpoint] * count
    match = _TCP_PORT.match(endpoint)
    if match:
        port = int(match["port"])
        if port + count - 1 > 65535:
            raise ValueError(f"--publish {endpoint}: {count} streams need ports {port}.."
                             f"{port + count - 1}, beyond 65535; choose a lower port")  # fmt: skip
        return [f"{match['head']}:{port + i}" for i in range(count)]
    if endpoint.startswith(("ipc://", "inproc://")):
        return [f"{endpoint}-{i}" for i in range(count)]
    raise ValueError(
        f"--publish {endpoint!r} is not a ZeroMQ endpoint; use e.g. {DEFAULT_ENDPOINT}"
    )


class LockedWords:
    """The word embedder shared by the streams' ASR threads. Calls take turns: its prefix cache
    is an OrderedDict that concurrent calls would corrupt, and on a few cores running the encoder
    for two streams at once gains nothing."""

    def __init__(self, words: Any) -> None:
        self._words = words
        self._lock = threading.Lock()

    def embed_words(self, words: list) -> list:
        with self._lock:
            return self._words.embed_words(words)

    def embed_sentence(self, text: str) -> Any:
        with self._lock:
            return self._words.embed_sentence(text)

    @property
    def adapter_digest(self) -> str:
        return self._words.adapter_digest

    @property
    def dim(self) -> int:
        return self._words.dim

    @property
    def description(self) -> str:
        return self._words.description


@dataclass(frozen=True)
class SharedModels:
    """The extractor models every stream uses; load once, pass to several MultiSessions."""

    recognizer: Any  # realtime.extractors.asr.SpeechRecognizer
    words: LockedWords
    expressions: SharedExpressionNet  # the face expression network, batched across streams

    @classmethod
    def load(
        cls, text_adapter: dict[str, Any] | None = None, asr_workers: int = 1
    ) -> SharedModels:
        """text_adapter: the checkpoint's encoder adapter (LoadedCheckpoint.text_adapter).
        asr_workers: how many streams' Whisper calls run at once (one: in turn)."""
        loaded = Extractors.load(
            with_face=False, text_adapter=text_adapter, asr_workers=asr_workers
        )
        return cls(loaded.recognizer, LockedWords(loaded.words), SharedExpressionNet())

    def for_stream(self, expressions: ExpressionHandle) -> Extractors:
        """A stream's extractors: the shared models, and a face extractor of its own (the
        cascade search keeps per-stream state and is not thread-safe) that runs its faces
        through `expressions`, the stream's handle on the shared network."""
        from realtime.extractors.face import FaceExtractor

        face = FaceExtractor(net=expressions)
        return Extractors(face=face, recognizer=self.recognizer, words=self.words)  # type: ignore[arg-type]

    def shutdown(self) -> None:
        self.expressions.shutdown()


@dataclass(frozen=True)
class MultiOptions:
    inputs: tuple[InputOptions, ...]  # one per stream: a --video file or the demo clip
    engine: str = "onnx"
    checkpoint: Path = DEFAULT_CHECKPOINT
    publish: PublisherOptions = field(default_factory=PublisherOptions)  # stream 0's endpoint
    record_dir: Path | None = None  # stream i records into record_dir / "stream-i"
    pipeline: PipelineOptions = field(default_factory=PipelineOptions)  # session id replaced
    max_wait_s: float = 0.002  # how long the batcher waits for the other streams' steps
    session_prefix: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    def __post_init__(self) -> None:
        if not self.inputs:
            raise ValueError("no input: pass --video PATH (repeatable) or --demo N")
        for inputs in self.inputs:
            if inputs.live:
                raise ValueError("realtime.multi replays files only: use --video or --demo")
        if self.engine not in ENGINES:
            raise ValueError(f"--engine {self.engine} cannot be shared by several streams; "
                             f"choose one of {', '.join(ENGINES)}")  # fmt: skip
        if not (0.0 <= self.max_wait_s <= 1.0):
            raise ValueError(f"--max-wait-ms must be in [0, 1000], got {self.max_wait_s * 1000:g}")
        stream_endpoints(self.publish.endpoint, len(self.inputs))  # refuses a bad one now

    def stream_options(self, index: int) -> SessionOptions:
        endpoint = stream_endpoints(self.publish.endpoint, len(self.inputs))[index]
        return SessionOptions(
            inputs=self.inputs[index], engine=self.engine, checkpoint=self.checkpoint,
            publish=replace(self.publish, endpoint=endpoint),
            record_dir=None if self.record_dir is None else self.record_dir / f"stream-{index}",
            pipeline=replace(self.pipeline, session=f"{self.session_prefix}-s{index}"),
        )  # fmt: skip


class MultiSession:
    """N stream sessions and the engine they share. start(), wait(), stop()."""

    def __init__(self, options: MultiOptions, models: SharedModels | None = None) -> None:
        from engines.batching import SharedEngine, SharedEngineError

        self.options = options
        self.sessions: list[Session] = []
        try:
            self.shared = SharedEngine(self._load_engine(), options.max_wait_s)
        except SharedEngineError as exc:
            raise SessionError(str(exc)) from None
        self._own_models = models is None
        self._face_handles: list[ExpressionHandle] = []
        try:
            self.models = models or SharedModels.load(self._text_adapter)
            for i in range(len(options.inputs)):
                self._face_handles.append(self.models.expressions.handle())
                self.sessions.append(Session(
                    options.stream_options(i),
                    extractors=self.models.for_stream(self._face_handles[-1]),
                    model=LoadedModel(self.shared.handle(f"stream-{i}"), self._text_adapter),
                ))  # fmt: skip
        except BaseException:
            self.stop()
            raise

    def _load_engine(self) -> Engine:
        """The engine every stream shares; a run-time failure switches all streams at once."""
        engine, self._text_adapter = load_live_engine(
            self.options.engine, self.options.checkpoint, self._engine_switched
        )
        return engine

    def _engine_switched(self, message: str) -> None:
        for session in self.sessions:  # one engine: every stream's status says it switched
            session.pipeline.stats.error(message)

    @property
    def endpoints(self) -> list[str]:
        return [s.endpoint for s in self.sessions]

    def start(self) -> None:
        try:
            for session in self.sessions:
                session.start()
        except SessionError:
            self.stop()
            raise

    def wait(self, timeout_s: float | None = None) -> bool:
        """True once every stream has ended."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        for session in self.sessions:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not session.pipeline.wait(left):
                return False
        return True

    def stop(self) -> None:
        """Stop every stream at once, not one after the other: each stop may wait up to 2 s for a
        Whisper pass, and with one shared Whisper the streams' passes queue behind each other."""
        stoppers = [
            threading.Thread(target=s.stop, name=f"stop-stream-{i}")
            for i, s in enumerate(self.sessions)
        ]  # fmt: skip
        for t in stoppers:
            t.start()
        for t in stoppers:
            t.join(10.0)
        if hasattr(self, "shared"):
            self.shared.shutdown()
        for handle in getattr(self, "_face_handles", []):
            handle.close()  # models passed in may serve another MultiSession: leave them running
        if getattr(self, "_own_models", False) and hasattr(self, "models"):
            self.models.shutdown()


# --------------------------------------------------------------------------- command line
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m realtime.multi", description=__doc__.splitlines()[0]
    )
    p.add_argument("--video", type=Path, action="append", default=[], metavar="PATH",
                   help="a media file; repeat for more streams")  # fmt: skip
    p.add_argument("--demo", type=int, default=0, metavar="N",
                   help="also N streams of the built-in demo clip (always paced)")  # fmt: skip
    p.add_argument("--realtime", action="store_true",
                   help="pace --video files at real time (default: as fast as possible)")  # fmt: skip
    add_model_flags(p, ENGINES, "onnx")
    p.add_argument("--max-wait-ms", type=float, default=2.0,
                   help="how long a step waits for the other streams' steps (default 2)")  # fmt: skip
    add_output_flags(
        p,
        publish_help=f"stream 0's ZeroMQ PUB endpoint; stream i gets port + i (default {DEFAULT_ENDPOINT})",
        record_help="stream i records into DIR/stream-i",
    )
    add_timing_flags(p)
    add_log_flag(p)
    return p


def options_from(args: argparse.Namespace) -> MultiOptions:
    if args.demo < 0:
        raise ValueError(f"--demo must be a number of streams >= 0, got {args.demo}")
    inputs = tuple(InputOptions(video=v, realtime=args.realtime) for v in args.video)
    inputs += tuple(InputOptions(demo=True) for _ in range(args.demo))
    return MultiOptions(
        inputs=inputs, engine=args.engine, checkpoint=args.checkpoint,
        publish=PublisherOptions(endpoint=args.publish, curve_keys=args.curve_keys,
                                 insecure=args.insecure),
        record_dir=args.record,
        pipeline=PipelineOptions(step_hz=args.step_hz, pause_ms=args.pause_ms,
                                 duration_s=args.duration, text_hold=not args.no_text_hold),
        max_wait_s=args.max_wait_ms / 1000.0,
    )  # fmt: skip


_PRINT_LOCK = threading.Lock()  # streams print from their own core threads: whole lines only


def _utterance_printer(index: int):  # noqa: ANN202
    from contract.messages import UtteranceMessage

    def on_message(msg: object) -> None:
        if isinstance(msg, UtteranceMessage):
            with _PRINT_LOCK:
                print(f"[{index}] utterance {msg.utterance_id:3d} "
                      f"[{msg.t_start:6.1f}-{msg.t_end:6.1f} s] {msg.final_intensity:+.2f} "
                      f"{msg.label:<8} {msg.transcript}", flush=True)  # fmt: skip

    return on_message


def main(argv: list[str] | None = None) -> int:
    native_heap.limit_arenas()  # before any thread starts (realtime/native_heap.py)
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")  # fmt: skip
    try:
        options = options_from(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    import torch

    torch.set_num_threads(1)  # as in main.py: the streams' threads already fill the cores
    signals = StopOnSignal().install()  # as main.py: before the models load
    stop = signals.stop
    multi: MultiSession | None = None
    try:
        multi = MultiSession(options)
        signals.loading = False
        for i, session in enumerate(multi.sessions):
            session.pipeline.on_message = _utterance_printer(i)
            log.info("stream %d: session %s on %s", i, session.options.pipeline.session,
                     session.endpoint)  # fmt: skip
        multi.start()
    except SessionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    try:
        while not stop.is_set() and not multi.wait(1.0):
            with _PRINT_LOCK:
                for i, session in enumerate(multi.sessions):
                    print(f"[{i}] {console_line(session.pipeline)}", flush=True)
    finally:
        multi.stop()
    for i, session in enumerate(multi.sessions):
        print(f"[{i}] {console_line(session.pipeline)}", flush=True)
    log.info("engine batches: %s", multi.shared.stats())
    log.info("face batches: %s", multi.models.expressions.stats())
    exit_past_busy_workers(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
