"""The live pipeline: capture, extraction and core threads, and the queues between them.

    sources --pump--> video queue --video worker (face)------------------\
                  \\-> audio queue --audio worker (voice, VAD, segments)--> core queue --> core
                  \\-> media recorder (--record-media: audio here, frames via the media writer)
                                          \\--> ASR worker (Whisper + word embeddings) --/
    core: StreamCore (realtime/stream_core.py): aligner -> step runner (engine) -> utterances
          -> publisher / recorder

This module keeps the threads and the queues; what happens to an event is the stream core's,
which has no threads of its own. Workers hand the core typed events (realtime/stream_events.py).
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
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from contract import messages
from engines.base import Engine
from realtime.audio_frontend import AudioFrontEnd
from realtime.clock import StreamClock
from realtime.device_health import DeliveryWatch
from realtime.extractors import Extractors
from realtime.extractors.asr import AsrRequest, AsrResult
from realtime.extractors.asr_worker import AsrWorker
from realtime.extractors.face import FaceSampler
from realtime.extractors.multi_face import MultiFaceAnalyzer
from realtime.extractors.vad import PauseOnset, SegmentEnd, SegmentStart
from realtime.media_recorder import MediaRecorder, MediaRecorderError
from realtime.outlets import Outlet
from realtime.people import PeopleSampler, preview_faces
from realtime.pipeline_options import PipelineOptions
from realtime.publisher import Publisher
from realtime.queues import DropOldestQueue
from realtime.readouts import ReadoutBook
from realtime.sources.base import Source, SourceError
from realtime.status import SessionStats
from realtime.stream_core import CoreInputs, DeviceCounts, StreamCore
from realtime.stream_events import (
    FaceAnalysed,
    Publish,
    SegmentClosed,
    SegmentOpened,
    SpeechScored,
    StreamEnded,
    VoiceAnalysed,
    WordsRecognised,
)
from realtime.types import AudioBlock, VideoFrame

__all__ = ["Pipeline", "PipelineOptions"]
log = logging.getLogger(__name__)

_EOS = object()  # end of a source's stream, sent through every queue after the last record


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
        self.extractors = extractors
        self.publisher = publisher
        # Everything a message goes to: the publisher first, then recorders, LSL, ...
        self.outlets: list[Outlet] = ([publisher] if publisher is not None else []) + list(
            outlets or []
        )
        self.frame_sink = frame_sink  # the in-process camera preview, when there is one
        # Raw audio and frames, to files only: audio written by the pumps (a block costs
        # microseconds), frames encoded on their own thread, off the capture and face paths.
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
        self._asr = AsrWorker(extractors.recognizer, on_result=self._on_asr,
                              on_speculation=self._embed_speculation)  # fmt: skip
        self.on_baseline: Callable[[dict], None] | None = None  # a baseline was set: its JSON
        self.readouts: ReadoutBook | None = None  # made by the core thread
        self.finished = threading.Event()
        self.people: MultiFaceAnalyzer | None = None  # every face with ids; made at start

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
        try:  # (replay)
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

        self._threads.append(thread := threading.Thread(target=guarded, name=name, daemon=True))
        thread.start()

    def start(self, restart_clock: bool = True) -> None:
        """restart_clock=False: the sources captured since the clock started (realtime/sources/early.py)."""
        if restart_clock:
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
        if self.has_video and self.options.max_faces and (face := self.extractors.face):
            self.people = MultiFaceAnalyzer(self.options.max_faces, net=getattr(face, "net", None))
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
                log.warning("media recording: %d frames dropped (encoder behind)", self._media_q.dropped)
            self.media.close()  # safe even if the writer is still running: it takes a lock
        for outlet in self.outlets:
            if outlet is not self.publisher:  # the session owns the socket and closes it last
                outlet.close()

    def inject(self, msg: messages.Message) -> None:
        """Publish a message made outside the pipeline (an LSL marker), from any thread. It goes
        through the core queue: outlets (a ZeroMQ socket, the recorder) are not thread-safe, so
        only the core thread calls them. Messages injected after the core has ended are dropped."""
        self._core_q.put(Publish(msg))

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
        rate = o.step_hz if o.face_hz is None else o.face_hz
        sampler: FaceSampler | PeopleSampler = FaceSampler(face, rate)
        if self.people is not None:  # every face, with ids (realtime/people.py)
            sampler = PeopleSampler(sampler, self.people, rate)
        while not self.stop_event.is_set():
            item = self._get(self._video_q)
            if item is None:
                continue
            if item is _EOS:
                self._core_q.put(StreamEnded("video"))
                break
            frame, avail_s = item
            obs = sampler.push(frame)  # reuses the interval's analysis where it has one
            self._core_q.put(FaceAnalysed(obs, avail_s))
            if self.frame_sink is not None:
                self.frame_sink(frame.image, obs.box, preview_faces(obs))
            self.stats.frame_done()
        if self.people is not None:
            self.people.close()

    def _audio_worker(self) -> None:
        o = self.options
        # Closed on every way out (end of input, an error, stop): openSMILE's run thread and
        # native handle, the VAD model.
        with AudioFrontEnd(o.pause_ms, o.audio_history_s, o.voice_chunk_s) as front:
            self._audio_loop(front)

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
                self._core_q.put(VoiceAnalysed(update.voice, self.clock.now()))
                for event in update.events:
                    self._segment_event(event, front)
                self._core_q.put(StreamEnded("audio", t_end_s))
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
            self._core_q.put(VoiceAnalysed(update.voice, avail_s))
            for event in update.events:
                self._segment_event(event, front)
                open_segment = event if isinstance(event, SegmentStart) else None
                last_partial_s = t_end_s
            # After the block's segment events, with the segmenter's own horizon: the core must
            # learn of a segment (opened backdated) before it may settle text past its start.
            self._core_q.put(SpeechScored(tuple(update.speech), front.decided_until_s))
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
            self._core_q.put(SegmentOpened(event))
            return
        t0, samples = front.cut(event.t_start_s, event.t_end_s)
        self._core_q.put(SegmentClosed(event, time.monotonic()))
        self._asr.submit(AsrRequest(event.segment_id, t0, samples, final=True))

    def _embed_speculation(self, words: tuple) -> None:
        """On the ASR thread, while a pause is being confirmed: embed the speculated words, so that
        the final's embedding (the same prefixes, when the speculation is used) is a cache hit
        and the utterance closes without waiting for the sentence encoder. A failure here is
        logged by the worker; the final embeds its words again and reports its own."""
        self.extractors.words.embed_words(list(words))

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
        self._core_q.put(WordsRecognised(result, tuple(embedded)))

    # ------------------------------------------------------------------ the core
    def _device_counts(self) -> DeviceCounts:
        source_stats = [s.stats() for s in self.sources]
        dropped_frames = sum(st.frames_dropped for st in source_stats)
        # Device overflows (samples PortAudio lost before we saw them) count as dropped audio.
        dropped_audio = sum(st.audio_dropped + st.audio_overflows for st in source_stats)
        if isinstance(self._video_q, DropOldestQueue):
            dropped_frames += self._video_q.dropped
        if isinstance(self._audio_q, DropOldestQueue):
            dropped_audio += self._audio_q.dropped
        with self.stats.lock:
            sanitised = self._raw_audio_sanitised
        return DeviceCounts(dropped_frames, dropped_audio, sanitised)

    def _core(self) -> None:
        """The core thread: events from the queue into the stream core, one tick per batch."""
        core = StreamCore(self.options, self.engine, CoreInputs(
            has_video=self.has_video, has_audio=self.has_audio, live=self.live,
            stats=self.stats, watch=self._last_delivery, emit=self._emit,
            device_counts=self._device_counts,
            security=self.publisher.security() if self.publisher is not None
            else CoreInputs.security,
            on_baseline=self._save_baseline,
            face_note=self.people.fallback_reason if self.people is not None else None,
        ))  # fmt: skip
        self.readouts = core.readouts
        try:
            while not self.stop_event.is_set():
                try:
                    event = self._core_q.get(timeout=0.02)
                except queue.Empty:
                    event = None
                while event is not None:
                    core.handle(event)
                    try:
                        event = self._core_q.get_nowait()
                    except queue.Empty:
                        event = None
                if core.tick(self.clock.now(), time.monotonic()):
                    break
        finally:
            core.close()
            self.finished.set()

    def _emit(self, msg: messages.Message) -> None:
        for outlet in self.outlets:
            try:
                outlet.send(msg)
            except Exception as exc:  # a full disk or a broken outlet must not stop the stream
                self.stats.error(f"{type(outlet).__name__}: {exc}")
        if self.on_message is not None:
            self.on_message(msg)

    def _save_baseline(self, baseline: dict) -> None:
        if self.on_baseline is not None:
            self.on_baseline(baseline)  # errors are counted by the core
