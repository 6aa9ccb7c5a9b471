"""Lab Streaming Layer bridge: the affect stream as LSL outlets, and an experimenter's markers in.

`LslOutlet` is an Outlet (see realtime/outlets.py) that publishes two streams beside ZeroMQ:

- `<name>` (type `Affect`): one float32 sample per model time step at the step rate, channels
  STEP_CHANNELS (labels, units and types in the stream's XML `desc`).
- `<name>-utterances` (type `Markers`, irregular): one string sample per utterance result, the
  `msrg.utterance` JSON object exactly as on ZeroMQ (contract/schema/messages.schema.json).
- `<name>-faces` (type `AffectFaces`): one float32 sample per final step, every tracked face in a
  slot of its own (realtime/lsl_faces.py FACE_CHANNELS, docs/lsl.md), up to four people.

`LslMarkerInlet` receives an experimenter's marker stream (e.g. from PsychoPy) on a thread of its
own and hands each marker, as an `msrg.marker` message, to a `publish` callback (the pipeline's
`inject`), so markers reach the recording, ZeroMQ and the dashboard like any other message.

Clock. Timestamps are capture times, not send times: a step is stamped at the end of its window
(`t_end`), an utterance at its start, mapped as stream seconds -> `time.monotonic()` (plus the
StreamClock's origin) -> the LSL clock (plus `lsl_clock_offset_s`). liblsl's `local_clock()` is
C++ `std::chrono::steady_clock`, which on Linux is CLOCK_MONOTONIC, the clock behind
`time.monotonic()`: the offset is then zero to within microseconds (tests check it). It is measured
once at start rather than assumed, since other systems need not share the clock. LSL's own time
synchronisation between machines (LabRecorder's clock offsets) then works unchanged. A file
replayed faster than real time gets timestamps on its media time from the session start, so they
run ahead of `local_clock()`; pass --realtime when other devices are recorded alongside.

Revisions. LSL samples cannot be revised, so the `Affect` stream carries each step once, when it
is final (`StepMessage.final`). A step becomes final when no late word can change it: outside
speech within about a VAD hop, inside speech once the utterance has closed (a pause, 600 ms by
default) and been transcribed, i.e. up to the utterance's length plus pause plus ASR time (1-3 s
on a CPU) after capture. This delays delivery only: timestamps stay capture times, so a recording
aligns exactly; an online consumer that needs low latency should read ZeroMQ's provisional steps.

pylsl is imported lazily (the `lsl` extra): nothing here loads it until a stream is made.
"""

from __future__ import annotations

import json
import logging
import math
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

from contract import messages
from contract.readout_messages import READOUT_FIELDS, readout_values
from realtime.clock import StreamClock
from realtime.lsl_faces import FACE_CHANNELS, FaceSlots, faces_sample

log = logging.getLogger(__name__)

# (label, unit, type) per channel of the Affect stream, in sample order.
STEP_CHANNELS: tuple[tuple[str, str, str], ...] = (
    ("intensity", "intensity (-3..3)", "SentimentIntensity"),
    *((f"weight_{m}", "fraction", "ModalityWeight") for m in messages.MODALITIES),
    *((f"present_{m}", "boolean", "ModalityPresent") for m in messages.MODALITIES),
    # The face and voice readouts (realtime/readouts.py); NaN when not measured in the step.
    *((f, "probability", "FaceExpression") for f in READOUT_FIELDS[:7]),
    ("face_valence", "circumplex (-1..1)", "FaceValence"),
    ("face_arousal", "circumplex (-1..1)", "FaceArousal"),
    ("face_quality", "confidence (0..1)", "FaceQuality"),
    ("voice_loudness", "eGeMAPS loudness", "VoiceLoudness"),
    ("voice_pitch", "semitones above 27.5 Hz", "VoicePitch"),
    ("voice_pitch_variability", "semitones", "VoicePitchVariability"),
    ("voice_arousal", "proxy (-1..1)", "VoiceArousal"),
    *((f, "robust z-score", "BaselineRelative") for f in READOUT_FIELDS[14:]),
)
MANUFACTURER = "affect-monitor"


class LslError(RuntimeError):
    """pylsl missing, or a stream that cannot be made or found; one line for the user."""


@dataclass(frozen=True)
class LslOptions:
    outlets: bool = False  # --lsl: publish the Affect and utterance streams
    markers_from: str | None = None  # --lsl-markers NAME: receive this marker stream
    name: str = "affect-monitor"  # name of the Affect stream; utterances get "<name>-utterances"
    resolve_timeout_s: float = 5.0  # how long --lsl-markers looks for its stream at start

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise ValueError("the LSL stream name must not be empty")
        if self.markers_from is not None and not self.markers_from.strip():
            raise ValueError("--lsl-markers needs the name of a marker stream")
        if not (math.isfinite(self.resolve_timeout_s) and self.resolve_timeout_s > 0):
            raise ValueError(f"LSL resolve timeout must be > 0 s, got {self.resolve_timeout_s}")


def import_pylsl() -> ModuleType:
    try:
        import pylsl
    except ImportError as exc:  # also raised when the bundled liblsl cannot be loaded
        raise LslError(f"LSL needs pylsl: pip install -e .[lsl] ({exc})") from None
    return pylsl


def lsl_clock_offset_s(local_clock: Callable[[], float], probes: int = 7) -> float:
    """`local_clock() - time.monotonic()`, from the probe with the tightest bracket."""
    best_width_s, best_offset_s = math.inf, 0.0
    for _ in range(probes):
        before_s = time.monotonic()
        lsl_s = local_clock()
        after_s = time.monotonic()
        if after_s - before_s < best_width_s:
            best_width_s, best_offset_s = after_s - before_s, lsl_s - (before_s + after_s) / 2
    return best_offset_s


class LslClock:
    """Stream seconds <-> LSL seconds. Reads the StreamClock's origin on every call, since the
    pipeline restarts that clock when capture starts (after these streams exist)."""

    def __init__(self, clock: StreamClock, offset_s: float) -> None:
        self.clock = clock
        self.offset_s = offset_s

    def to_lsl(self, t_stream_s: float) -> float:
        return self.clock.origin_monotonic_s + t_stream_s + self.offset_s

    def to_stream(self, t_lsl_s: float) -> float:
        return t_lsl_s - self.offset_s - self.clock.origin_monotonic_s


def source_id(stream_name: str) -> str:
    """Stable across restarts (host and name, not the session id), so LabRecorder and other
    inlets reconnect by themselves when the monitor is restarted mid-recording."""
    return f"{MANUFACTURER}:{socket.gethostname()}:{stream_name}"


def step_sample(msg: messages.StepMessage) -> list[float]:
    """One Affect sample, in STEP_CHANNELS order."""
    w, p = msg.modality_weights, msg.present
    return [msg.intensity, *(getattr(w, m) for m in messages.MODALITIES),
            *(float(getattr(p, m)) for m in messages.MODALITIES),
            *(math.nan if v is None else v for v in readout_values(msg.face, msg.voice))]  # fmt: skip


class LslOutlet:
    """The Affect and utterance streams; `send` takes every pipeline message, keeps its own."""

    def __init__(self, options: LslOptions, clock: StreamClock, step_hz: float,
                 session: str) -> None:  # fmt: skip
        pylsl = import_pylsl()
        self.clock = LslClock(clock, lsl_clock_offset_s(pylsl.local_clock))
        log.debug("LSL clock = monotonic %+.6f s", self.clock.offset_s)
        self.steps_pushed = self.steps_skipped = self.utterances_pushed = 0
        self._last_seq = -1
        self._lock = threading.Lock()  # close() may come from another thread than send()
        steps_name, utt_name = options.name, f"{options.name}-utterances"
        self._slots = FaceSlots(hold_steps=max(1, round(5.0 * step_hz)))
        try:
            self._steps = _regular(pylsl, steps_name, "Affect", STEP_CHANNELS, step_hz, session)
            self._faces = _regular(pylsl, f"{options.name}-faces", "AffectFaces", FACE_CHANNELS,
                                   step_hz, session)  # fmt: skip
            info = pylsl.StreamInfo(utt_name, "Markers", 1, pylsl.IRREGULAR_RATE,
                                    pylsl.cf_string, source_id(utt_name))  # fmt: skip
            desc = _describe(info, session, "start of the utterance (capture time)")
            desc.append_child_value("content", "msrg.utterance JSON, schema version "
                                    f"{messages.SCHEMA_VERSION}")  # fmt: skip
            self._utterances = pylsl.StreamOutlet(info)
        except RuntimeError as exc:  # pylsl raises RuntimeError when liblsl refuses
            raise LslError(f"cannot create the LSL streams: {exc}") from None
        self.closed = False
        log.info("LSL streams %r (Affect, %g Hz), %r (AffectFaces) and %r (Markers) are up",
                 steps_name, step_hz, f"{options.name}-faces", utt_name)  # fmt: skip
        # Unlike the ZeroMQ feed (loopback by default), LSL announces itself to the whole site.
        log.warning("LSL streams are unencrypted and visible across liblsl's resolve scope "
                    "(the site by default; set it in lsl_api.cfg, see docs/lsl.md)")  # fmt: skip

    def send(self, msg: messages.Message) -> None:
        with self._lock:
            if self.closed:
                return
            if isinstance(msg, messages.StepMessage):
                self._send_step(msg)
            elif isinstance(msg, messages.UtteranceMessage):
                body = json.dumps(msg.to_dict(), ensure_ascii=False, separators=(",", ":"))
                self._utterances.push_sample([body], self.clock.to_lsl(msg.t_start))
                self.utterances_pushed += 1
            # Status stays on ZeroMQ; markers came from LSL and are already in any recording.

    def _send_step(self, msg: messages.StepMessage) -> None:
        if not msg.final:
            return
        if msg.seq <= self._last_seq:
            # Finals arrive in seq order (the step runner finalises a prefix); a repeat or an
            # older step would break the regular stream's order, so it is counted and dropped.
            self.steps_skipped += 1
            return
        self._last_seq = msg.seq
        self._steps.push_sample(step_sample(msg), self.clock.to_lsl(msg.t_end))
        self._faces.push_sample(faces_sample(msg, self._slots), self.clock.to_lsl(msg.t_end))
        self.steps_pushed += 1

    def wait_for_consumers(self, timeout_s: float) -> bool:
        """Whether an inlet (LabRecorder, a script) is connected to the Affect stream within the
        timeout: LSL delivers only the samples pushed after a consumer has connected."""
        with self._lock:
            steps = None if self.closed else self._steps
        return steps is not None and steps.wait_for_consumers(timeout_s)

    def close(self) -> None:
        with self._lock:
            if self.closed:
                return
            self.closed = True
            # pylsl destroys an outlet when its last reference goes: this unlists both streams.
            self._steps = self._utterances = self._faces = None
        log.info("LSL streams closed: %d steps (%d skipped), %d utterances", self.steps_pushed,
                 self.steps_skipped, self.utterances_pushed)  # fmt: skip


def _regular(pylsl: ModuleType, name: str, kind: str, channels_: tuple, step_hz: float,
             session: str):  # fmt: skip
    """A float32 outlet at the step rate with its channels' label, unit and type in `desc`."""
    info = pylsl.StreamInfo(name, kind, len(channels_), step_hz, pylsl.cf_float32,
                            source_id(name))  # fmt: skip
    desc = _describe(info, session, "end of the step window (capture time)")
    desc.append_child_value("revisions", "final values only")
    channels = desc.append_child("channels")
    for label, unit, ch_type in channels_:
        ch = channels.append_child("channel")
        ch.append_child_value("label", label)
        ch.append_child_value("unit", unit)
        ch.append_child_value("type", ch_type)
    return pylsl.StreamOutlet(info, chunk_size=1)  # steps are few: no batching


def _describe(info, session: str, timestamps: str):
    desc = info.desc()
    desc.append_child_value("manufacturer", MANUFACTURER)
    desc.append_child_value("session", session)
    desc.append_child_value("timestamps", timestamps)
    return desc


class LslMarkerInlet:
    """An experimenter's marker stream, found by name at construction (or LslError), read by one
    thread between `start()` and `close()`; each marker becomes an `msrg.marker` message."""

    def __init__(self, options: LslOptions, clock: StreamClock, session: str,
                 publish: Callable[[messages.MarkerMessage], None]) -> None:  # fmt: skip
        assert options.markers_from is not None
        pylsl = import_pylsl()
        self.name = options.markers_from
        self.session = session
        self.publish = publish
        self.clock = LslClock(clock, lsl_clock_offset_s(pylsl.local_clock))
        self.received = self.dropped = 0
        found = pylsl.resolve_byprop("name", self.name, 1, options.resolve_timeout_s)
        if not found:
            raise LslError(f"no LSL stream named {self.name!r} found in "
                           f"{options.resolve_timeout_s:g} s: is its sender running?")  # fmt: skip
        info = found[0]
        if info.nominal_srate() != pylsl.IRREGULAR_RATE:
            raise LslError(f"LSL stream {self.name!r} is a regular {info.nominal_srate():g} Hz "
                           "stream, not a marker stream")  # fmt: skip
        # clocksync: timestamps come back on this machine's LSL clock, whichever host sent them.
        self._inlet = pylsl.StreamInlet(info, processing_flags=pylsl.proc_clocksync)
        try:
            self._inlet.open_stream(options.resolve_timeout_s)
        except Exception as exc:  # pylsl.TimeoutError and lost-stream errors alike
            raise LslError(f"cannot open LSL stream {self.name!r}: {exc}") from None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        log.info("receiving markers from LSL stream %r (type %s, on %s)", self.name, info.type(),
                 info.hostname())  # fmt: skip

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="lsl-markers", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        seq = 0
        while not self._stop.is_set():
            try:
                # Blocks in liblsl with the GIL released; the timeout bounds how late stop is seen.
                sample, t_lsl_s = self._inlet.pull_sample(timeout=0.2)
            except Exception as exc:  # the sender vanished and cannot be recovered
                log.warning("marker stream %r lost: %s", self.name, exc)
                return
            if sample is None:
                continue
            self.received += 1
            marker = self._marker(seq, sample, t_lsl_s)
            if marker is None:
                self.dropped += 1
                continue
            seq += 1
            self.publish(marker)

    def _marker(self, seq: int, sample: list, t_lsl_s: float) -> messages.MarkerMessage | None:
        t_stream_s = self.clock.to_stream(t_lsl_s)
        if not 0.0 <= t_stream_s <= messages.MAX_STREAM_S:
            # Before the session's stream time 0 (sent while the models loaded) there is no
            # step to line it up with, and the schema's stream times are not negative.
            log.info("marker %r at %.3f s, before the session started: not recorded", sample,
                     t_stream_s)  # fmt: skip
            return None
        value = str(sample[0]) if len(sample) == 1 else json.dumps(sample)
        return messages.MarkerMessage(
            session=self.session, seq=seq, t_emit=time.time(), t_stream=t_stream_s,
            source=self.name[:256], value=value[: messages.MAX_MARKER_CHARS],
        )  # fmt: skip

    def close(self, timeout_s: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.warning("the LSL marker thread did not stop within %.1f s", timeout_s)
                return  # it still uses the inlet: leave it to the process exit
        if self._inlet is not None:
            self._inlet.close_stream()
            self._inlet = None
            log.info("marker stream %r closed: %d received, %d dropped", self.name,
                     self.received, self.dropped)  # fmt: skip
