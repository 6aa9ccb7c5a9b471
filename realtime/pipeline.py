"""The live pipeline: the only module that owns threads and the stop Event.

    sources --pump--> video queue --video worker (face)------------------\
                  \\-> audio queue --audio worker (voice, VAD, segments)--> core queue --> core
                  \\-> media recorder (--record-media: audio here, frames via the media writer)
                                          \\--> ASR worker (Whisper + word embeddings) --/
    core: aligner -> step runner (engine) -> utterances -> publisher / recorder

Each thread runs one loop, hands off through a bounded queue and is joined with a timeout on
stop. Live sources drop the oldest item when a consumer falls behind (counted); replay sources
wait instead, so replay is deterministic. Only the core thread touches the model state.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from engines.base import Engine
from realtime import messages
from realtime.aligner import Aligner, AlignerOptions
from realtime.audio_frontend import AudioFrontEnd
from realtime.baseline import Baseline
from realtime.clock import StreamClock
from realtime.device_health import DeliveryWatch
from realtime.extractors import Extractors
from realtime.extractors.asr import AsrRequest, AsrResult, AsrWorker
from realtime.extractors.face import FaceSampler
from realtime.extractors.vad import (
    PauseOnset,
    SegmentEnd,
    SegmentStart,
)
from realtime.media_recorder import MediaRecorder, MediaRecorderError
from realtime.native_heap import Trimmer
from realtime.outlets import Outlet
from realtime.publisher import Publisher
from realtime.queues import DropOldestQueue
from realtime.readouts import ReadoutBook
from realtime.sources.base import Source, SourceError
from realtime.status import SessionStats
from realtime.stepper import StepOutcome, StepRunner
from realtime.types import AudioBlock, VideoFrame
from realtime.utterances import PendingUtterance, UtteranceTracker

log = logging.getLogger(__name__)

_EOS = object()  # end of a source's stream, sent through every queue after the last record


@dataclass(frozen=True)
class PipelineOptions:
    step_hz: float = 10.0
    pause_ms: float = 600.0
    duration_s: float | None = None  # stop after this much stream time
    late_after_s: float = 0.5  # a modality this late no longer holds a step back (live only)
    partial_asr_s: float = 0.0  # transcribe a growing segment every so often (0: finals only)
    # Start transcribing at a pause onset and keep the result if the pause is confirmed with the
    # same audio (realtime/extractors/asr.py); False waits for the pause, as before.
    speculative_asr: bool = True
    # Face analysis rate: the first frame of each 1/face_hz interval is analysed and the others
    # reuse its result (None: the step rate, so one analysis per step; 0: every frame). At 30 fps
    # this saves two thirds of the largest extraction cost, and a step pools one frame's
    # expression instead of three near-identical ones.
    face_hz: float | None = None
    asr_wait_s: float = 60.0  # at the end of a stream, wait this long for pending transcripts
    status_period_s: float = 1.0
    # Freed C heap goes back to the system this often (realtime/native_heap.py; the soak).
    heap_trim_period_s: float = 60.0
    # A live device silent this long is reported lost (at once, not at the next 1 Hz status),
    # so a dashboard learns of an unplugged camera within ~1 s; real frame gaps are < 0.2 s.
    lost_after_s: float = 1.0
    audio_history_s: float = 40.0  # audio kept for cutting speech segments (> max segment)
    # New audio gathered before it is written to openSMILE's streaming graph
    # (realtime/extractors/voice.py): 0.1 s for live latency; a file replayed flat out uses 1 s.
    voice_chunk_s: float = 0.1
    session: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    baseline_s: float = 20.0  # seconds of face and of speech for the per-person baseline (0: off)
    baseline: dict | None = None  # a saved baseline (baseline.json) to use instead of measuring

    def __post_init__(self) -> None:
        if not (math.isfinite(self.step_hz) and 0 < self.step_hz <= 100):
            raise ValueError(f"--step-hz must be in (0, 100], got {self.step_hz}")
        if not (math.isfinite(self.pause_ms) and self.pause_ms > 0):
            raise ValueError(f"--pause-ms must be > 0, got {self.pause_ms}")
        if self.duration_s is not None and not (self.duration_s > 0):
            raise ValueError(f"--duration must be > 0 seconds, got {self.duration_s}")
        if self.face_hz is not None and not (math.isfinite(self.face_hz) and self.face_hz >= 0):
            raise ValueError(f"--face-hz must be >= 0, got {self.face_hz}")
        if not (math.isfinite(self.voice_chunk_s) and 0 < self.voice_chunk_s <= 5):
            raise ValueError(f"voice_chunk_s must be in (0, 5] seconds, got {self.voice_chunk_s}")
        if not (self.lost_after_s > 0 and self.status_period_s > 0):
            raise ValueError("lost_after_s and status_period_s must be > 0")
        if not (math.isfinite(self.baseline_s) and self.baseline_s >= 0):
            raise ValueError(f"--baseline-s must be a number of seconds >= 0, got {self.baseline_s}")


class Pipeline:
    def __init__(
        self, options: PipelineOptions, sources: list[Source], engine: Engine,
        extractors: Extractors, publisher: Publisher | None = None,
        outlets: list[Outlet] | None = None, clock: StreamClock | None = None, live: bool = True,
        on_message: Callable[[messages.Message], None] | None = None,
        frame_sink: Callable[[np.ndarray, tuple[int, int, int, int] | None], None] | None = None,
        media: MediaRecorder | None = None,
    ) -> None:  # fmt: skip
        self.options = options
        self.sources = sources
        self.engine = engine
        usage = getattr(engine, "model_modalities", None)  # set by a ModalityGate
        self._model_modalities = messages.ModelModalities(**usage) if usage else None
        self.extractors = extractors
        self.publisher = publisher
        # Everything a message goes to: the publisher first, then recorders, LSL, ...
        self.outlets: list[Outlet] = ([publisher] if publisher is not None else []) + list(
            outlets or []
        )
        self.frame_sink = frame_sink  # the in-process camera preview, when there is one
        # Raw audio and frames, to files only. Audio is written by the pumps (a block costs
        # microseconds); frames are encoded on their own thread, off the capture and face paths.
        self.media = media
        self.clock = clock or StreamClock()
        self.live = live
        self.on_message = on_message
        self.stats = SessionStats()
        self.stop_event = threading.Event()
        self.has_video = self.has_audio = False  # known once the sources have started
        self._last_delivery = DeliveryWatch(options.lost_after_s)  # device health, set at start
        self._raw_audio_sanitised = 0  # audio blocks whose NaN/inf samples were zeroed
        self._video_q = self._queue(8)
        self._audio_q = self._queue(64)
        self._media_q = self._queue(64)  # frames for the media recorder's encoder
        self._core_q: queue.Queue = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._asr = AsrWorker(extractors.recognizer, on_result=self._on_asr)
        self._utterance_seq = 0
        self._status_seq = 0
        self.on_baseline: Callable[[dict], None] | None = None  # a baseline was set: its JSON
        self.readouts: ReadoutBook | None = None  # made by the core thread
        self.finished = threading.Event()

    # ------------------------------------------------------------------ queues and threads
    def _queue(self, size: int):
        return DropOldestQueue(size) if self.live else queue.Queue(size)

    def _put(self, q, item) -> None:
        """Live: never blocks (drops oldest). Replay: waits, but gives up when stopping."""
        if isinstance(q, DropOldestQueue):
            q.put(item)
            return
        while not self.stop_event.is_set():
            try:
                q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _get(self, q, timeout_s: float = 0.1):
        if isinstance(q, DropOldestQueue):
            return q.get(timeout_s)
        try:
            return q.get(timeout=timeout_s)
        except queue.Empty:
            return None

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        def guarded() -> None:
            try:
                target()
            except Exception as exc:  # a dying worker is reported, and the session ends cleanly
                log.exception("%s failed", name)
                self.stats.error(f"{name}: {exc}")
                self.stop_event.set()
                self.finished.set()

        thread = threading.Thread(target=guarded, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def start(self) -> None:
        self.clock.restart()  # stream time 0 is now, after the models have loaded
        for source in self.sources:
            source.start()
        self.has_video = any(s.has_video for s in self.sources)
        self.has_audio = any(s.has_audio for s in self.sources)
        if not (self.has_video or self.has_audio):
            raise SourceError("the input has neither video nor audio; try another file or --demo")
        self._eos_pending = {"video": self.has_video, "audio": self.has_audio}
        grace = {kind: max((s.startup_grace_s for s in self.sources
                            if (s.has_video if kind == "video" else s.has_audio)), default=0.0)
                 for kind in ("video", "audio")}  # fmt: skip
        self._last_delivery = DeliveryWatch(self.options.lost_after_s, grace)
        self._asr.start()
        for i, source in enumerate(self.sources):
            self._spawn(f"pump-{i}-{source.name}", lambda s=source: self._pump(s))
        if self.has_video:
            self._spawn("video-worker", self._video_worker)
        if self.has_audio:
            self._spawn("audio-worker", self._audio_worker)
        if self.media is not None and self.has_video:
            video_sources = sum(1 for s in self.sources if s.has_video)
            self._spawn("media-writer", lambda: self._media_writer(video_sources))
        self._spawn("core", self._core)

    def stop(self, timeout_s: float = 2.0) -> None:
        """Stop every thread, join each with a timeout, release devices, close outputs."""
        self.stop_event.set()
        deadline = time.monotonic() + timeout_s
        for source in self.sources:
            source.stop()
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._asr.stop(max(0.1, deadline - time.monotonic()))
        alive = [t.name for t in self._threads if t.is_alive()]
        if alive:
            log.warning("threads still running after %.1f s: %s", timeout_s, ", ".join(alive))
        if self.media is not None:
            if isinstance(self._media_q, DropOldestQueue) and self._media_q.dropped:
                log.warning("media recording: %d frames dropped (the encoder fell behind)",
                            self._media_q.dropped)  # fmt: skip
            self.media.close()  # safe even if the writer is still running: it takes a lock
        for outlet in self.outlets:
            if outlet is not self.publisher:  # the session owns the socket and closes it last
                outlet.close()

    def inject(self, msg: messages.Message) -> None:
        """Publish a message made outside the pipeline (an LSL marker), from any thread. It goes
        through the core queue: outlets (a ZeroMQ socket, the recorder) are not thread-safe, so
        only the core thread calls them. Messages injected after the core has ended are dropped."""
        self._core_q.put(("emit", msg))

    def wait(self, timeout_s: float | None = None) -> bool:
        """True once the session has ended (end of input, --duration, or stop)."""
        return self.finished.wait(timeout_s)

    # ------------------------------------------------------------------ pumps and workers
    def _pump(self, source: Source) -> None:
        ended_streams = set()
        limit = self.options.duration_s
        while not self.stop_event.is_set():
            record = source.read(0.1)
            if record is None:
                if source.finished:
                    break
                continue
            t_s = record.t_s if isinstance(record, VideoFrame) else record.t_start_s
            if limit is not None and t_s >= limit:
                break
            avail_s = min(t_s, self.clock.now())  # live: capture time; fast replay: read time
            if self.media is not None:
                self._record_media(self.media, record)
            # Device health is judged here, where records leave the device, so a slow extractor
            # downstream is never mistaken for a lost camera.
            if isinstance(record, VideoFrame):
                self._last_delivery.delivered("video")
                self._put(self._video_q, (record, avail_s))
            else:
                self._last_delivery.delivered("audio")
                self._put(self._audio_q, (record, avail_s))
        for kind, q in (("video", self._video_q), ("audio", self._audio_q)):
            has = source.has_video if kind == "video" else source.has_audio
            if has and kind not in ended_streams:
                self._put(q, _EOS)
        if self.media is not None and source.has_video:
            self._put(self._media_q, _EOS)

    def _record_media(self, media: MediaRecorder, record: VideoFrame | AudioBlock) -> None:
        """On a pump: raw audio to the WAV now, frames to the media writer's queue."""
        if isinstance(record, VideoFrame):
            self._put(self._media_q, record)
            return
        try:
            media.write_audio(record)
        except MediaRecorderError as exc:  # the stream goes on; the status says what stopped
            log.error("%s", exc)
            self.stats.error(str(exc))

    def _media_writer(self, video_sources: int) -> None:
        """Encode frames into the media recording until every video pump has ended, or until
        stopped and the queue is empty (an orderly stop keeps the frames already read)."""
        media = self.media
        assert media is not None
        ended = 0
        while ended < video_sources:
            item = self._get(self._media_q)
            if item is None:
                if self.stop_event.is_set():
                    return
                continue
            if item is _EOS:
                ended += 1
                continue
            try:
                media.write_frame(item)
            except MediaRecorderError as exc:
                log.error("%s", exc)
                self.stats.error(str(exc))

    def _video_worker(self) -> None:
        face = self.extractors.face
        assert face is not None, "a video source needs Extractors.load(with_face=True)"
        o = self.options
        sampler = FaceSampler(face, o.step_hz if o.face_hz is None else o.face_hz)
        while not self.stop_event.is_set():
            item = self._get(self._video_q)
            if item is None:
                continue
            if item is _EOS:
                self._core_q.put(("eos", "video"))
                return
            frame, avail_s = item
            obs = sampler.process(frame)  # reuses the interval's analysis where it has one
            self._core_q.put(("face", obs, avail_s))
            if self.frame_sink is not None:
                self.frame_sink(frame.image, obs.box)
            self.stats.frame_done()

    def _audio_worker(self) -> None:
        front = AudioFrontEnd(
            self.options.pause_ms, self.options.audio_history_s, self.options.voice_chunk_s
        )
        try:
            self._audio_loop(front)
        finally:
            front.close()  # openSMILE's run thread and handle, on every way out

    def _audio_loop(self, front: AudioFrontEnd) -> None:
        open_segment: SegmentStart | None = None
        speculated: PauseOnset | None = None  # the pause onset submitted to ASR early
        last_partial_s = -math.inf
        t_end_s = 0.0
        while not self.stop_event.is_set():
            item = self._get(self._audio_q)
            if item is None:
                continue
            if item is _EOS:
                update = front.flush()
                self._core_q.put(("voice", update.voice, self.clock.now()))
                for event in update.events:
                    self._segment_event(event, front)
                self._core_q.put(("eos", "audio", t_end_s))
                return
            block, avail_s = item
            if not np.isfinite(block.samples).all():
                # A broken driver or file: silence the bad samples rather than feed NaN to the
                # VAD's recurrent state and the recogniser; counted with the audio features.
                block = replace(block, samples=np.nan_to_num(block.samples, nan=0.0, posinf=0.0,
                                                             neginf=0.0))  # fmt: skip
                with self.stats.lock:
                    self._raw_audio_sanitised += 1
            t_end_s = block.t_end_s
            update = front.push(block)
            self._core_q.put(("voice", update.voice, avail_s))
            for event in update.events:
                self._segment_event(event, front)
                open_segment = event if isinstance(event, SegmentStart) else None
                last_partial_s = t_end_s
            # After the block's segment events, with the segmenter's own horizon: the core must
            # learn of a segment (opened backdated) before it may settle text past its start.
            self._core_q.put(("speech", update.speech, front.decided_until_s))
            if self.options.speculative_asr:
                speculated = self._speculate(front, open_segment, speculated)
            every = self.options.partial_asr_s
            if open_segment is not None and every > 0 and t_end_s - last_partial_s >= every:
                last_partial_s = t_end_s
                t0, samples = front.cut(open_segment.t_start_s, t_end_s)
                self._asr.submit(AsrRequest(open_segment.segment_id, t0, samples, final=False))

    def _speculate(
        self, front: AudioFrontEnd, open_segment: SegmentStart | None,
        speculated: PauseOnset | None,
    ) -> PauseOnset | None:  # fmt: skip
        """Speculative ASR: at a pause onset, submit the segment as it will be if the pause is
        confirmed, so Whisper runs during the pause instead of after it (the final request then
        finds the result ready or running); when speech resumes, withdraw it. Returns the onset
        now speculated on."""
        onset = front.pause_onset
        if onset == speculated:
            return speculated
        if onset is None:
            if (
                speculated is not None
                and open_segment is not None
                and open_segment.segment_id == speculated.segment_id
            ):
                self._asr.withdraw(speculated.segment_id)  # speech resumed: the guess is stale
            return None  # (or the segment closed: its final took the speculation over)
        t0, samples = front.cut(onset.t_start_s, onset.t_end_s)
        self._asr.submit(
            AsrRequest(onset.segment_id, t0, samples, final=False, speculative=True)
        )  # a newer onset of the same segment supersedes the older one in the inbox
        return onset

    def _segment_event(self, event: SegmentStart | SegmentEnd, front: AudioFrontEnd) -> None:
        if isinstance(event, SegmentStart):
            self._core_q.put(("open", event))
            return
        t0, samples = front.cut(event.t_start_s, event.t_end_s)
        self._core_q.put(("close", event, time.monotonic()))
        self._asr.submit(AsrRequest(event.segment_id, t0, samples, final=True))

    def _on_asr(self, result: AsrResult) -> None:
        """On the ASR thread: embed the words here, off the core thread."""
        if result.dropped:  # its utterance closes without words rather than hold every step
            self.stats.error(f"speech recognition fell behind: segment {result.segment_id} "
                             f"({result.t_start_s:.1f}-{result.t_end_s:.1f} s) has no words")  # fmt: skip
        try:
            embedded = self.extractors.words.embed_words(list(result.words))
        except Exception as exc:
            self.stats.error(f"word embedding: {exc}")
            embedded = []
        self._core_q.put(("words", result, embedded))

    # ------------------------------------------------------------------ the core
    def _core(self) -> None:
        hop_s = 1.0 / self.options.step_hz
        aligner = Aligner(
            AlignerOptions(
                step_hz=self.options.step_hz,
                expect_video=self.has_video,
                expect_audio=self.has_audio,
            )
        )
        runner = StepRunner(self.engine)
        tracker = UtteranceTracker()
        o = self.options
        baseline = (
            Baseline.from_json(o.baseline, hop_s) if o.baseline is not None
            else Baseline(o.baseline_s, hop_s, self.has_video, self.has_audio)
        )  # fmt: skip
        baseline.expected = {"face": self.has_video, "voice": self.has_audio}
        self.readouts = book = ReadoutBook(baseline, self._save_baseline)
        end_s = 0.0
        ended: set[str] = set()
        last_seen = self._last_delivery
        next_status = time.monotonic()
        eos_at: float | None = None
        states = self._source_states(ended, last_seen)
        trimmer = Trimmer(self.options.heap_trim_period_s)

        def handle(item: tuple) -> None:
            nonlocal end_s
            kind = item[0]
            if kind == "face":
                aligner.push_face(item[1], item[2])
                end_s = max(end_s, item[1].t_s)
            elif kind == "voice":
                aligner.push_voice(item[1], item[2])
            elif kind == "speech":
                aligner.push_speech(item[1])
                tracker.vad_until(item[2])
            elif kind == "open":
                tracker.opened(item[1].segment_id, item[1].t_start_s)
            elif kind == "close":
                ev: SegmentEnd = item[1]
                tracker.closed(ev.segment_id, ev.t_start_s, ev.t_end_s, item[2], ev.forced)
            elif kind == "words":
                result: AsrResult = item[1]
                aligner.set_words(result.t_start_s, result.t_end_s, item[2])
                if result.final:
                    tracker.transcribed(result.segment_id, result.words)
            elif kind == "emit":
                self._emit(item[1])
            elif kind == "eos":
                ended.add(item[1])
                if item[1] == "audio":
                    end_s = max(end_s, item[2])
                    tracker.vad_until(item[2])

        while not self.stop_event.is_set():
            try:
                item = self._core_q.get(timeout=0.02)
            except queue.Empty:
                item = None
            while item is not None:
                handle(item)
                try:
                    item = self._core_q.get_nowait()
                except queue.Empty:
                    item = None
            all_ended = ended >= {k for k, v in self._eos_pending.items() if v}
            now_s = self.clock.now()
            if all_ended:
                if eos_at is None:
                    eos_at = time.monotonic()
                    runner.add(book.admit(aligner.flush(end_s)))
                if tracker.awaiting_asr and time.monotonic() - eos_at > self.options.asr_wait_s:
                    missed = tracker.give_up_on_asr()
                    self.stats.error(f"speech recognition did not finish {missed} segment(s) in time")
                if not tracker.awaiting_asr:
                    tracker.close_all()
            else:
                runner.add(book.admit(
                    aligner.pop_ready(now_s if self.live else None, self.options.late_after_s)
                ))  # fmt: skip
            runner.revise(aligner.retext())
            aligner.set_text_final_until(
                math.inf if all_ended and not tracker.awaiting_asr else tracker.text_final_until()
            )
            runner.finalise(aligner.pop_final())
            for outcome in runner.take_publishable():
                self._publish_step(outcome)
            for utt in tracker.pop_due(aligner.next_seq * hop_s):
                self._publish_utterance(utt, runner)
            changed = self._source_states(ended, last_seen)
            if changed != states:
                self._report_source_change(states, changed)
                states = changed
                next_status = time.monotonic()  # tell subscribers now, not at the next tick
            if time.monotonic() >= next_status:
                next_status = time.monotonic() + self.options.status_period_s
                self._publish_status(aligner, ended, last_seen)
            trimmer.tick(time.monotonic())
            if all_ended and not tracker.pending and runner.provisional == 0:
                self._publish_status(aligner, ended, last_seen)
                break
        runner.close()
        self.finished.set()

    # ------------------------------------------------------------------ publishing
    def _emit(self, msg: messages.Message) -> None:
        for outlet in self.outlets:
            try:
                outlet.send(msg)
            except Exception as exc:  # a full disk or a broken outlet must not stop the stream
                self.stats.error(f"{type(outlet).__name__}: {exc}")
        if self.on_message is not None:
            self.on_message(msg)

    def _publish_step(self, o: StepOutcome) -> None:
        f = o.features
        latency_ms = max(0.0, (self.clock.now() - f.t_newest_capture_s) * 1000.0)
        w = [min(1.0, max(0.0, x)) for x in o.modality_weights]
        readout = self.readouts.take(f.seq, o.final) if self.readouts is not None else None
        msg = messages.StepMessage(
            session=self.options.session, seq=f.seq, t_emit=time.time(),
            t_start=f.t_start_s, t_end=f.t_end_s,
            intensity=min(messages.INTENSITY_MAX, max(messages.INTENSITY_MIN, o.shown)),
            modality_weights=messages.ModalityWeights(*w),
            present=messages.Presence(*(bool(p) for p in f.present)),
            revision=o.revision, final=o.final, latency_ms=latency_ms,
            face=readout.face if readout else None, voice=readout.voice if readout else None,
        )  # fmt: skip
        if o.revision == 0:
            with self.stats.lock:
                self.stats.latencies_ms.append(latency_ms)
        with self.stats.lock:
            self.stats.steps_published += 1
        self._emit(msg)

    def _publish_utterance(self, u: PendingUtterance, runner: StepRunner) -> None:
        assert u.t_end_s is not None
        steps = runner.steps_between(u.t_start_s, u.t_end_s)
        result = runner.utterance(steps)
        clip = lambda x: min(messages.INTENSITY_MAX, max(messages.INTENSITY_MIN, float(x)))
        latency_ms = max(
            0.0, (time.monotonic() - (u.closed_monotonic_s or time.monotonic())) * 1000.0
        )
        msg = messages.UtteranceMessage(
            session=self.options.session, seq=self._utterance_seq, t_emit=time.time(),
            utterance_id=u.segment_id, t_start=max(0.0, u.t_start_s), t_end=max(u.t_start_s, u.t_end_s, 0.0),
            transcript=u.transcript,
            utterance_intensity=clip(result.utterance_intensity[0]),
            timestep_intensity=clip(result.timestep_intensity[0]),
            final_intensity=clip(result.final_intensity[0]),
            latency_ms=latency_ms,
        )  # fmt: skip
        self._utterance_seq += 1
        with self.stats.lock:
            self.stats.utterances_published += 1
        self._emit(msg)

    def _source_state(self, kind: str, present: bool, ended: set[str], last_seen: DeliveryWatch) -> str:
        if not present:
            return "off"
        if kind in ended:
            return "ended"
        if self.live and last_seen.silent(kind):
            return "lost"
        return "ok"

    def _source_states(self, ended: set[str], last_seen: DeliveryWatch) -> dict[str, str]:
        return {
            "camera": self._source_state("video", self.has_video, ended, last_seen),
            "microphone": self._source_state("audio", self.has_audio, ended, last_seen),
        }

    def _report_source_change(self, before: dict[str, str], after: dict[str, str]) -> None:
        """A device went quiet or came back: one log line each way, and a counted error when it
        is lost, so the status's errors/last_error say what happened after the fact too."""
        for device, state in after.items():
            if state == before[device]:
                continue
            if state == "lost":
                absent = "visual" if device == "camera" else "audio"
                kind = "video" if device == "camera" else "audio"
                message = self._last_delivery.loss_message(device, kind, absent)
                log.warning(message)
                self.stats.error(message)
            elif before[device] == "lost" and state == "ok":
                log.info("%s back: delivering again", device)

    def _publish_status(self, aligner: Aligner, ended: set[str], last_seen: DeliveryWatch) -> None:
        stats = self.stats
        source_stats = [s.stats() for s in self.sources]
        dropped_frames = sum(st.frames_dropped for st in source_stats)
        # Device overflows (samples PortAudio lost before we saw them) count as dropped audio.
        dropped_audio = sum(st.audio_dropped + st.audio_overflows for st in source_stats)
        for q, name in ((self._video_q, "frames"), (self._audio_q, "audio")):
            if isinstance(q, DropOldestQueue):
                if name == "frames":
                    dropped_frames += q.dropped
                else:
                    dropped_audio += q.dropped
        p50, p95 = stats.latency_percentiles()
        security = (
            self.publisher.security() if self.publisher is not None
            else messages.Security(endpoint="none://", loopback=True, curve=False, insecure=False)
        )  # fmt: skip
        msg = messages.StatusMessage(
            session=self.options.session, seq=self._status_seq, t_emit=time.time(),
            t_stream=max(0.0, self.clock.now()), engine=self.engine.name,
            engine_note=getattr(self.engine, "selection_note", None),
            fps=stats.rate("frames", stats.frames_processed),
            step_rate_hz=stats.rate("steps", aligner.next_seq),
            dropped_frames=dropped_frames, dropped_audio_blocks=dropped_audio,
            latency_p50_ms=p50, latency_p95_ms=p95, errors=stats.errors, last_error=stats.last_error,
            sources=messages.SourceStates(**self._source_states(ended, last_seen)),
            sanitised=messages.SanitisedCounts(**{
                **aligner.sanitised, "audio": aligner.sanitised["audio"] + self._raw_audio_sanitised
            }),
            security=security, calibration=self._calibration(),
            model_modalities=self._model_modalities,
        )  # fmt: skip
        self._status_seq += 1
        self._emit(msg)

    def _save_baseline(self, baseline: dict) -> None:
        if self.on_baseline is not None:
            try:
                self.on_baseline(baseline)
            except Exception as exc:  # a full disk must not stop the stream; it is reported
                self.stats.error(f"saving the baseline: {exc}")

    def _calibration(self) -> messages.Calibration | None:
        status = self.readouts.calibration() if self.readouts is not None else None
        return messages.Calibration(**status) if status is not None else None
