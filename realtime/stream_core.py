"""The stream core: events in, messages out, no threads and no clock of its own.

    core.handle(event)               # any number of events (realtime/stream_events.py)
    done = core.tick(stream_s, mono_s)  # then one tick: steps, utterances, status

`handle` files an event with the step assembler (realtime/step_assembler.py: the aligner and the
utterance tracker, shared with file replay) or, for a message made elsewhere, the outlets. `tick`
does the work the events made possible: the assembler's ready steps through the engine (and
provisional steps re-run when their words changed), final steps and utterance results
published, device states checked, the
status every `status_period_s`, freed C heap returned once a minute. It returns True once every
source has ended and everything owed has been published. Both times are passed in (`stream_s`
from the session's stream clock, `mono_s` from `time.monotonic()`), so a test drives the core
with events and chosen times and reads the messages it emitted, without threads or sleeps.
The pipeline (realtime/pipeline.py) runs this object on its core thread.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from contract import messages
from engines.base import Engine
from realtime.aligner import AlignerOptions
from realtime.baseline import Baseline
from realtime.device_health import DeliveryWatch
from realtime.native_heap import Trimmer
from realtime.people import PeopleReadouts
from realtime.pipeline_options import PipelineOptions
from realtime.readouts import ReadoutBook
from realtime.status import SessionStats
from realtime.step_assembler import StepAssembler
from realtime.stepper import StepOutcome, StepRunner
from realtime.stream_events import Publish, StreamEvent
from realtime.utterances import PendingUtterance

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeviceCounts:
    """What the threads around the core counted, for the status message."""

    dropped_frames: int = 0
    dropped_audio_blocks: int = 0
    raw_audio_sanitised: int = 0


@dataclass(frozen=True)
class CoreInputs:
    """Which streams the session has, and the shared objects the core reads or reports to."""

    has_video: bool
    has_audio: bool
    live: bool  # live sources: late modalities stop holding steps back, devices can be lost
    stats: SessionStats
    watch: DeliveryWatch  # the pumps mark each delivery; the core reads it for device states
    emit: Callable[[messages.Message], None]  # every message, in order, on the calling thread
    device_counts: Callable[[], DeviceCounts] = DeviceCounts
    security: messages.Security = messages.Security(
        endpoint="none://", loopback=True, curve=False, insecure=False
    )
    on_baseline: Callable[[dict], None] | None = None  # a baseline was set: its JSON
    face_note: str | None = None  # several faces by the Haar fallback: why (for the status)


class StreamCore:
    def __init__(self, options: PipelineOptions, engine: Engine, inputs: CoreInputs) -> None:
        self.options = o = options
        self.inputs = inputs
        self.engine = engine
        usage = engine.model_modalities  # set by a ModalityGate
        self._model_modalities = messages.ModelModalities(**usage) if usage else None
        self._hop_s = 1.0 / o.step_hz
        self.steps = StepAssembler(AlignerOptions(
            step_hz=o.step_hz, expect_video=inputs.has_video, expect_audio=inputs.has_audio,
            late_after_s=o.late_after_s, text_dim=engine.config.text_dim,
            text_hold_s=o.text_hold_s,
        ))  # fmt: skip
        self.runner = StepRunner(engine)
        baseline = (
            Baseline.from_json(o.baseline, self._hop_s) if o.baseline is not None
            else Baseline(o.baseline_s, self._hop_s, inputs.has_video, inputs.has_audio)
        )  # fmt: skip
        baseline.expected = {"face": inputs.has_video, "voice": inputs.has_audio}
        self.readouts = ReadoutBook(baseline, self._save_baseline)
        self.people = PeopleReadouts(o.baseline_s, self._hop_s)  # faces, speakers (issue 33)
        self._eos_at: float | None = None
        self._next_status: float | None = None
        self._states = self.source_states(None)
        self._trimmer = Trimmer(o.heap_trim_period_s)
        self._utterance_seq = 0
        self._status_seq = 0
        self.done = False

    # ------------------------------------------------------------------ events
    def handle(self, event: StreamEvent) -> None:
        if isinstance(event, Publish):
            self._emit(event.message)
        else:
            self.steps.push(event)

    # ------------------------------------------------------------------ one tick
    def tick(self, stream_s: float, mono_s: float) -> bool:
        """Everything the events so far allow; True once the stream is over and published."""
        if self.done:
            return True
        steps, runner = self.steps, self.runner
        all_ended = steps.all_ended
        if all_ended:
            self._give_up_on_asr_after_wait(mono_s)
        batch = steps.pull(stream_s if self.inputs.live else None)
        self.readouts.admit(batch.new)
        self.people.admit(batch.new)
        for outcome in runner.push(batch):
            self._publish_step(outcome, stream_s)
        for utt in steps.due_utterances():
            self._publish_utterance(utt, mono_s)
        changed = self.source_states(mono_s)
        if changed != self._states:
            self._report_source_change(self._states, changed)
            self._states = changed
            self._next_status = mono_s  # tell subscribers now, not at the next tick
        if self._next_status is None or mono_s >= self._next_status:
            self._next_status = mono_s + self.options.status_period_s
            self._publish_status(stream_s, mono_s)
        self._trimmer.tick(mono_s)
        if all_ended and not steps.pending and runner.provisional == 0:
            self._publish_status(stream_s, mono_s)
            self.done = True
        return self.done

    def _give_up_on_asr_after_wait(self, mono_s: float) -> None:
        """Every source has ended: wait `asr_wait_s` for the transcripts still owed, then close
        their utterances without words, so the stream can end."""
        if self._eos_at is None:
            self._eos_at = mono_s
        if self.steps.awaiting_asr and mono_s - self._eos_at > self.options.asr_wait_s:
            missed = self.steps.give_up_on_asr()
            self.inputs.stats.error(
                f"speech recognition did not finish {missed} segment(s) in time"
            )

    def close(self) -> None:
        """Idempotent: the runner lets the engine free what it holds for this stream."""
        self.runner.close()

    # ------------------------------------------------------------------ devices
    def _source_state(self, kind: str, present: bool, mono_s: float | None) -> str:
        if not present:
            return "off"
        if kind in self.steps.ended:
            return "ended"
        if self.inputs.live and self.inputs.watch.silent(kind, mono_s):
            return "lost"
        return "ok"

    def source_states(self, mono_s: float | None) -> dict[str, str]:
        return {
            "camera": self._source_state("video", self.inputs.has_video, mono_s),
            "microphone": self._source_state("audio", self.inputs.has_audio, mono_s),
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
                message = self.inputs.watch.loss_message(device, kind, absent)
                log.warning(message)
                self.inputs.stats.error(message)
            elif before[device] == "lost" and state == "ok":
                log.info("%s back: delivering again", device)

    # ------------------------------------------------------------------ messages
    def _emit(self, msg: messages.Message) -> None:
        self.inputs.emit(msg)

    def _publish_step(self, o: StepOutcome, stream_s: float) -> None:
        f = o.features
        stats = self.inputs.stats
        latency_ms = max(0.0, (stream_s - f.t_newest_capture_s) * 1000.0)
        w = [min(1.0, max(0.0, x)) for x in o.modality_weights]
        readout = self.readouts.take(f.seq, o.final)
        faces, speaker = self.people.take(f.seq, o.final)
        msg = messages.StepMessage(
            session=self.options.session, seq=f.seq, t_emit=time.time(),
            t_start=f.t_start_s, t_end=f.t_end_s,
            intensity=min(messages.INTENSITY_MAX, max(messages.INTENSITY_MIN, o.shown)),
            modality_weights=messages.ModalityWeights(*w),
            present=messages.Presence(*(bool(p) for p in f.present)),
            revision=o.revision, final=o.final, latency_ms=latency_ms,
            face=readout.face, voice=readout.voice, faces=faces, speaker=speaker,
        )  # fmt: skip
        with stats.lock:
            if o.revision == 0:
                stats.latencies_ms.append(latency_ms)
            stats.steps_published += 1
        self._emit(msg)

    def _publish_utterance(self, u: PendingUtterance, mono_s: float) -> None:
        assert u.t_end_s is not None
        result = self.runner.utterance(self.runner.steps_between(u.t_start_s, u.t_end_s))
        clip = lambda x: min(messages.INTENSITY_MAX, max(messages.INTENSITY_MIN, float(x)))
        closed = u.closed_monotonic_s if u.closed_monotonic_s is not None else mono_s
        msg = messages.UtteranceMessage(
            session=self.options.session, seq=self._utterance_seq, t_emit=time.time(),
            utterance_id=u.segment_id, t_start=max(0.0, u.t_start_s), t_end=max(u.t_start_s, u.t_end_s, 0.0),
            transcript=u.transcript,
            utterance_intensity=clip(result.utterance_intensity[0]),
            timestep_intensity=clip(result.timestep_intensity[0]),
            final_intensity=clip(result.final_intensity[0]),
            latency_ms=max(0.0, (mono_s - closed) * 1000.0),
            speaker=self.people.utterance_speaker(u.t_start_s, u.t_end_s),
        )  # fmt: skip
        self._utterance_seq += 1
        with self.inputs.stats.lock:
            self.inputs.stats.utterances_published += 1
        self._emit(msg)

    def _publish_status(self, stream_s: float, mono_s: float) -> None:
        stats, counts = self.inputs.stats, self.inputs.device_counts()
        p50, p95 = stats.latency_percentiles()
        sanitised = dict(self.steps.aligner.sanitised)
        sanitised["audio"] += counts.raw_audio_sanitised
        calibration = self.readouts.calibration()
        msg = messages.StatusMessage(
            session=self.options.session, seq=self._status_seq, t_emit=time.time(),
            t_stream=max(0.0, stream_s), engine=self.engine.name,
            engine_note=self.engine.selection_note,
            fps=stats.rate("frames", stats.frames_processed),
            step_rate_hz=stats.rate("steps", self.steps.aligner.next_seq),
            dropped_frames=counts.dropped_frames, dropped_audio_blocks=counts.dropped_audio_blocks,
            latency_p50_ms=p50, latency_p95_ms=p95, errors=stats.errors, last_error=stats.last_error,
            sources=messages.SourceStates(**self.source_states(mono_s)),
            sanitised=messages.SanitisedCounts(**sanitised),
            security=self.inputs.security,
            calibration=messages.Calibration(**calibration) if calibration is not None else None,
            model_modalities=self._model_modalities, face_note=self.inputs.face_note,
        )  # fmt: skip
        self._status_seq += 1
        self._emit(msg)

    def _save_baseline(self, baseline: dict) -> None:
        if self.inputs.on_baseline is not None:
            try:
                self.inputs.on_baseline(baseline)
            except Exception as exc:  # a full disk must not stop the stream; it is reported
                self.inputs.stats.error(f"saving the baseline: {exc}")
