"""One monitoring session: builds sources, models, engine, publisher and recorder from options,
runs the pipeline, and turns every known failure into a one-line SessionError."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from engines.base import Engine
from engines.fallback import FallbackEngine, fallback_kind
from engines.modality_gate import ModalityGate
from msrg.config import LIVE_AUDIO_DIM, LIVE_VISUAL_DIM
from realtime.clock import StreamClock
from realtime.extractors import Extractors
from realtime.extractors.whisper_weights import ASR_MODEL_CHOICES, AsrModelError, locate_parts
from realtime.extractors.words import TextModelError
from realtime.lsl import LslError, LslMarkerInlet, LslOptions, LslOutlet
from realtime.media_recorder import MediaRecorder
from realtime.pipeline import Pipeline, PipelineOptions
from realtime.publisher import Publisher, PublisherError, PublisherOptions
from realtime.recorder import Recorder, RecorderError
from realtime.sources.base import Source, SourceError
from realtime.sources.early import EarlyCapture

log = logging.getLogger(__name__)

FAST_VOICE_CHUNK_S = 1.0  # voice chunk for input replayed as fast as possible
DEFAULT_CHECKPOINT = Path(__file__).resolve().parent.parent / "msrg" / "weights" / "msrg-live.pt"


class SessionError(RuntimeError):
    """A problem the user can fix (device, file, model, endpoint); one line, no traceback."""


def live_dims(text_adapter: dict | None) -> dict[str, int]:
    """The feature widths the live extractors give a checkpoint with this text adapter (its
    encoder sets the text width)."""
    from msrg.text_adapter import adapter_encoder

    text = adapter_encoder(text_adapter).dim
    return {"text": text, "audio": LIVE_AUDIO_DIM, "visual": LIVE_VISUAL_DIM}


@dataclass(frozen=True)
class InputOptions:
    camera: int | None = None
    mic: str | None = None  # sounddevice name or index; None with --camera: the default input
    video: Path | None = None
    demo: bool = False
    realtime: bool = False  # pace file replay at real time (the demo always is)
    use_mic: bool = True  # with --camera, also open the microphone

    def __post_init__(self) -> None:
        chosen = (
            sum(x is not None and x is not False for x in (self.camera, self.video)) + self.demo
        )
        if chosen > 1:
            raise ValueError("choose one input: --camera, --video or --demo")
        if chosen == 0 and self.mic is None:
            raise ValueError("no input: pass --camera INDEX, --mic DEVICE, --video PATH or --demo")
        if self.camera is not None and self.camera < 0:
            raise ValueError(f"--camera must be an index >= 0, got {self.camera}")

    @property
    def live(self) -> bool:
        return self.video is None and not self.demo

    @property
    def paced(self) -> bool:
        """Input arrives at real time: a device, the demo, or a file with --realtime."""
        return self.live or self.demo or self.realtime


@dataclass(frozen=True)
class SessionOptions:
    inputs: InputOptions
    engine: str = "auto"
    checkpoint: Path = DEFAULT_CHECKPOINT
    triton_url: str | None = None  # HOST:PORT of a Triton server (engine "triton")
    publish: PublisherOptions = field(default_factory=PublisherOptions)
    record_dir: Path | None = None
    record_media: bool = False  # also the raw audio (WAV) and video (MKV), into record_dir
    pipeline: PipelineOptions = field(default_factory=PipelineOptions)
    lsl: LslOptions = field(default_factory=LslOptions)
    asr_model: str = "base"  # --asr-model: base, small, tiny.en (whisper_weights.ASR_MODELS)

    def __post_init__(self) -> None:
        if self.asr_model not in ASR_MODEL_CHOICES:
            raise ValueError(f"--asr-model must be one of {', '.join(ASR_MODEL_CHOICES)}, "
                             f"got {self.asr_model!r}")  # fmt: skip
        if self.record_media and self.record_dir is None:
            raise ValueError("--record-media needs --record DIR, the folder to write the media to")


def _sources(inputs: InputOptions, clock: StreamClock) -> list[Source]:
    from realtime.sources.media_file import MediaFileOptions, MediaFileSource

    if inputs.demo:
        from realtime.sources.demo import demo_source

        return [demo_source(realtime=True, clock=clock)]
    if inputs.video is not None:
        source = MediaFileSource(MediaFileOptions(inputs.video, realtime=inputs.realtime), clock)
        try:
            source.probe()  # a missing, unreadable or streamless file: say so before models load
        except SourceError as exc:
            raise SessionError(str(exc)) from None
        return [source]
    sources: list[Source] = []
    if inputs.camera is not None:
        from realtime.sources.camera import CameraOptions, CameraSource

        camera = CameraSource(CameraOptions(index=inputs.camera), clock)
        try:
            camera.probe()  # opened now and kept: a missing camera is refused before the models load
        except SourceError as exc:
            raise SessionError(str(exc)) from None
        sources.append(camera)
    if inputs.mic is not None or (inputs.camera is not None and inputs.use_mic):
        from realtime.sources.microphone import MicrophoneOptions, MicrophoneSource

        device = int(inputs.mic) if inputs.mic is not None and inputs.mic.isdigit() else inputs.mic
        microphone = MicrophoneSource(clock, MicrophoneOptions(device=device))
        try:
            microphone.probe()  # a missing microphone: say so before the models load
        except SourceError as exc:
            for source in sources:
                source.stop()  # the camera probed above
            raise SessionError(str(exc)) from None
        sources.append(microphone)
    return sources


def check_text_adapter(extractors: Extractors, adapter: dict | None, checkpoint: Path) -> None:
    """The model must see text embedded as in its training: refuse extractors whose encoder
    carries another adapter than the checkpoint's (possible only when extractors are passed in).
    The adapter's digest covers its encoder: each encoder's weights have names of their own."""
    from msrg.text_adapter import adapter_digest, adapter_encoder, describe_text_model

    want = adapter_digest(adapter)
    have = extractors.words.adapter_digest
    encoder = adapter_encoder(adapter)
    if have != want or extractors.words.dim != encoder.dim:
        raise SessionError(
            f"the word embedder is {extractors.words.description} but checkpoint {checkpoint} "
            f"was trained on {describe_text_model(encoder, want)}; load the extractors with "
            "Extractors.load(text_adapter=load_checkpoint(...).text_adapter)"
        )


def load_live_engine(
    kind: str, checkpoint: Path, on_switch: Callable[[str], None], triton_url: str | None = None
) -> tuple[ModalityGate, dict | None]:
    """The requested engine for `checkpoint`, checked against the live features and wrapped so
    that a run-time failure switches once to the next back-end (engines/fallback.py),
    with the checkpoint's text adapter (the word embedder must carry it). One line
    (SessionError) when the checkpoint or the engine cannot serve.

    Outermost, a ModalityGate (engines/modality_gate.py) masks the modalities the checkpoint did
    not learn from, before any back-end, the fallback or a shared batched engine sees a step or
    an utterance; the log says once which modalities the model uses."""
    from engines import load_engine
    from engines.base import EngineError
    from msrg.checkpoint import CheckpointError, check_feature_dims, load_checkpoint
    from msrg.modalities import describe_usage

    try:
        # The model is small: reading it twice costs milliseconds and refuses a checkpoint
        # trained on other features before any engine export starts.
        loaded = load_checkpoint(checkpoint)
        check_feature_dims(loaded.config, live_dims(loaded.text_adapter),
                           f"checkpoint {checkpoint}", "the live feature extractors")  # fmt: skip
        engine = load_engine(kind, checkpoint, triton_url=triton_url)
    except (CheckpointError, EngineError) as exc:
        raise SessionError(str(exc)) from None
    log.info("engine: %s (%s)", engine.name, engine.selection_note)
    next_kind = fallback_kind(engine.name)
    load_next = (lambda: load_engine(next_kind, checkpoint)) if next_kind else None
    log.info("model modalities: %s", describe_usage(loaded.modality_usage))
    gate = ModalityGate(FallbackEngine(engine, load_next, on_switch=on_switch), loaded.modality_usage)
    return gate, loaded.text_adapter


@dataclass(frozen=True)
class LoadedModel:
    """An engine ready to serve, and the text adapter its checkpoint was trained with (the word
    embedder must carry the same one)."""

    engine: Engine
    text_adapter: dict | None


class Session:
    """Sources, outputs, models and the pipeline of one stream. What it opens is released in
    reverse order by one ExitStack, on every way out: a failure while building, or `stop`.

    `model` injects an engine and its text adapter (realtime/multi.py passes a handle on the
    shared engine); without it the session loads `options.engine` for `options.checkpoint`,
    after the sources are checked and the outputs opened, so a bad input fails in a second."""

    def __init__(
        self, options: SessionOptions, extractors: Extractors | None = None, frame_sink=None,
        model: LoadedModel | None = None,
    ) -> None:  # fmt: skip
        self.options = options
        self.clock = StreamClock()
        self._resources = contextlib.ExitStack()
        self.publisher = None
        self.recorder = None
        self.media: MediaRecorder | None = None
        self.lsl_outlet: LslOutlet | None = None
        self.lsl_markers: LslMarkerInlet | None = None
        self.sources: list[Source] = []
        self._early = False  # capturing since before the models loaded
        try:
            self._build(options, extractors, frame_sink, model)
        except BaseException:
            self._resources.close()
            raise

    def _build(self, options: SessionOptions, extractors: Extractors | None, frame_sink,
               model: LoadedModel | None) -> None:  # fmt: skip
        close = self._resources.callback
        if extractors is None:  # a missing Whisper package: one line before anything opens
            try:
                locate_parts(options.asr_model)
            except AsrModelError as exc:
                raise SessionError(str(exc)) from None
        self.sources = _sources(options.inputs, self.clock)  # probed: missing input fails now
        for source in self.sources:
            close(source.stop)  # idempotent; releases a camera probed before a failed load
        try:  # outputs first: a port in use or a read-only folder is reported in a second
            self.publisher = Publisher(options.publish)
            close(self.publisher.close)  # closed after the recorder and LSL (newest first)
            if options.record_dir is not None:
                self.recorder = Recorder(options.record_dir)  # also checks the folder is usable
                close(self.recorder.close)
                if options.record_media:
                    self.media = MediaRecorder(options.record_dir, options.pipeline.session)
                    close(self.media.close)
        except (PublisherError, RecorderError) as exc:
            raise SessionError(str(exc)) from None
        if options.inputs.live:
            # Listen at once: devices open and capture now, into a bounded buffer that the
            # pipeline processes once the models below have loaded (realtime/sources/early.py).
            self.clock.restart()
            try:
                self.sources = [EarlyCapture(source) for source in self.sources]
            except SourceError as exc:
                raise SessionError(str(exc)) from None
            self._early = True
        if model is None:
            engine, adapter = load_live_engine(
                options.engine, options.checkpoint, self._engine_switched,
                triton_url=options.triton_url,
            )  # fmt: skip
            model = LoadedModel(engine, adapter)
        self.engine = model.engine
        try:
            # Before the models load: LSL consumers connect while they do, and a missing
            # marker stream fails in seconds rather than after the load.
            if options.lsl.outlets:
                self.lsl_outlet = LslOutlet(options.lsl, self.clock, options.pipeline.step_hz,
                                            options.pipeline.session)  # fmt: skip
                close(self.lsl_outlet.close)
            if options.lsl.markers_from is not None:
                self.lsl_markers = LslMarkerInlet(
                    options.lsl, self.clock, options.pipeline.session,
                    publish=lambda msg: self.pipeline.inject(msg))  # fmt: skip
                close(self.lsl_markers.close)  # first of all: it injects into the pipeline
        except LslError as exc:
            raise SessionError(str(exc)) from None
        # Files reveal their streams only when opened; the face model is cheap, so load it
        # unless the input is a microphone alone.
        with_face = not (options.inputs.live and options.inputs.camera is None)
        try:
            self.extractors = extractors or Extractors.load(
                with_face=with_face, text_adapter=model.text_adapter,
                asr_model=options.asr_model,
            )  # fmt: skip
            check_text_adapter(self.extractors, model.text_adapter, options.checkpoint)
            log.info("text: %s", self.extractors.words.description)
        except (SessionError, TextModelError, AsrModelError) as exc:
            raise SessionError(str(exc)) from None
        outlets = [o for o in (self.recorder, self.lsl_outlet) if o is not None]
        pipeline_options = options.pipeline
        if not options.inputs.paced:
            # Speculation buys latency, which a file replayed as fast as possible does not have;
            # there it would only add a Whisper pass at every silence that is not a pause. For the
            # same reason voice descriptors are computed a second at a time (same frames, ~1/6
            # of the CPU).
            pipeline_options = replace(
                pipeline_options, speculative_asr=False,
                voice_chunk_s=max(pipeline_options.voice_chunk_s, FAST_VOICE_CHUNK_S),
            )  # fmt: skip
        self.pipeline = Pipeline(
            pipeline_options, self.sources, self.engine, self.extractors,
            publisher=self.publisher, outlets=outlets, clock=self.clock,
            live=options.inputs.live, frame_sink=frame_sink, media=self.media,
        )  # fmt: skip
        if self.recorder is not None:
            self.pipeline.on_baseline = self.recorder.write_baseline

    def _engine_switched(self, message: str) -> None:
        self.pipeline.stats.error(message)  # errors/last_error of the next status say so

    @property
    def endpoint(self) -> str:
        assert self.publisher is not None
        return self.publisher.endpoint

    def start(self) -> None:
        """Start the pipeline; if it cannot start, whatever it and the session opened is
        released before the error goes on."""
        try:
            self.pipeline.start(restart_clock=not self._early)
            if self.lsl_markers is not None:
                self.lsl_markers.start()  # now: markers map onto the stream clock started above
        except SourceError as exc:
            self.stop()
            raise SessionError(str(exc)) from None
        except BaseException:  # Ctrl-C while starting, a thread that cannot start
            self.stop()
            raise

    def stop(self) -> None:
        """Join the pipeline's threads (the audio worker closes openSMILE and the VAD on its way
        out, the core thread the step runner), then release what the session opened, also when
        stopping fails part way. Safe to call more than once."""
        try:
            if self.lsl_markers is not None:
                self.lsl_markers.close()  # first: it injects into the pipeline
            self.pipeline.stop()
        finally:
            self.close_outputs()

    def close_outputs(self) -> None:
        """Release everything the session opened (sources, LSL, recorder, media, publisher),
        newest first; safe to call more than once."""
        self._resources.close()


def console_line(pipeline: Pipeline) -> str:
    """The compact once-a-second line printed when no dashboard is shown."""
    s = pipeline.stats
    p50, p95 = s.latency_percentiles()
    lat = f"{p50:.0f}/{p95:.0f} ms" if p50 is not None else "-"
    line = (
        f"t={pipeline.clock.now():6.1f}s steps={s.steps_published} utterances={s.utterances_published} "
        f"frames={s.frames_processed} latency p50/p95={lat} errors={s.errors}"
    )
    calibration = pipeline.readouts.calibration() if pipeline.readouts is not None else None
    if calibration is not None and calibration["state"] != "off":
        state = calibration["state"]
        if state == "calibrating":
            state += f" {100 * calibration['progress']:.0f}%"
        line += f" baseline={state}"
    return line


def exit_past_busy_workers(code: int) -> None:
    """A Whisper pass still running when a session stops is left to finish on its daemon thread;
    if the interpreter tears down under it, CTranslate2 aborts the process ("terminate called
    without an active exception") and the exit status is lost. Call this once everything is
    closed and flushed: with a pass still running it ends the process with `code` at once,
    skipping the teardown; otherwise it returns."""
    busy = [t for t in threading.enumerate() if t.name == "asr-worker" and t.is_alive()]
    if not busy:
        return
    log.info("%d transcription(s) still running; exiting without waiting for them", len(busy))
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
