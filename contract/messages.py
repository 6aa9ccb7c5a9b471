"""The wire format of the affect stream: topics, typed messages, encode/decode, label thresholds.

Stdlib only: the dashboard and any third-party subscriber import this without numpy or torch.
Every message travels as a ZeroMQ multipart `[topic, UTF-8 JSON object]`. The JSON Schema in
`contract/schema/messages.schema.json` describes the same objects for other languages; the
checks below mirror it (plus `t_end >= t_start`, which JSON Schema cannot express), so decoding
needs no jsonschema at run time.

Conventions: stream times (`t_start`, `t_end`, `t_stream`) are seconds since session start on the
capture clock; `t_emit` is unix seconds at emission; `seq` counts per topic within a session,
except for steps, where it is the step index and revisions of a step share it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from contract.message_fields import (  # noqa: F401  (MessageError and the checks are public here)
    MAX_COUNT,
    MessageError,
    _boolean,
    _integer,
    _number,
    _object,
    _optional,
    _string,
    build_record,
)
from contract.names import INTENSITY_MAX, INTENSITY_MIN, LABELS, NEUTRAL_BAND  # noqa: F401
from contract.person_messages import MAX_FACES, FaceList, HeadPose, PersonFace, check_faces  # noqa: F401
from contract.readout_messages import (  # noqa: F401  (re-exported: subscribers import messages)
    CALIBRATION_STATES,
    CIRCUMPLEX,
    EXPRESSION_LABELS,
    Calibration,
    Expressions,
    FaceBaseline,
    FaceReadout,
    VoiceBaseline,
    VoiceReadout,
)
from contract.status_fields import (  # noqa: F401  (re-exported: subscribers import messages)
    MODALITIES,
    SOURCE_STATES,
    ModelModalities,
    SanitisedCounts,
    Security,
    SourceStates,
)

SCHEMA_VERSION = 1
SCHEMA_PATH = Path(__file__).with_name("schema") / "messages.schema.json"

TOPIC_STEP = "msrg.step"
TOPIC_UTTERANCE = "msrg.utterance"
TOPIC_STATUS = "msrg.status"
TOPIC_MARKER = "msrg.marker"
TOPICS = (TOPIC_STEP, TOPIC_UTTERANCE, TOPIC_STATUS, TOPIC_MARKER)

MAX_STREAM_S = 1e9  # ~31 years: a stream time beyond this is corrupt, and plots lose precision
MAX_MARKER_CHARS = 1_000  # an event marker is a label or a short JSON object, not a document
MAX_FRAME_BYTES = 1 << 20  # a real message is < 2 KiB; anything near this is garbage or an attack


def label_for(intensity: float) -> str:
    """The sentiment label of an intensity in [-3, 3], by the thresholds above."""
    if intensity < -NEUTRAL_BAND:
        return "negative"
    if intensity > NEUTRAL_BAND:
        return "positive"
    return "neutral"


# --- nested records -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModalityWeights:
    """AMLP fusion weights per modality, each in [0, 1] (they sum to about 1)."""

    text: float
    audio: float
    visual: float

    def __post_init__(self) -> None:
        for m in MODALITIES:
            _number(f"modality_weights.{m}", getattr(self, m), 0.0, 1.0)


@dataclass(frozen=True)
class Presence:
    """Which modalities carried input in the step (face seen, voice heard, words placed)."""

    text: bool
    audio: bool
    visual: bool

    def __post_init__(self) -> None:
        for m in MODALITIES:
            _boolean(f"present.{m}", getattr(self, m))


_NESTED = {
    "model_modalities": ModelModalities,
    "modality_weights": ModalityWeights,
    "present": Presence,
    "sources": SourceStates,
    "sanitised": SanitisedCounts,
    "security": Security,
    "face": FaceReadout,
    "voice": VoiceReadout,
    "calibration": Calibration,
    "faces": FaceList,
}


# --- the four messages ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Message:
    session: str
    seq: int
    t_emit: float  # unix seconds at emission

    TOPIC = ""  # class constant, set by each message kind

    def __post_init__(self) -> None:
        _string("session", self.session, non_empty=True, max_len=128)
        _integer("seq", self.seq)
        _number("t_emit", self.t_emit, 0.0)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of the message, `v` first."""
        return {"v": SCHEMA_VERSION, **asdict(self)}

    @classmethod
    def from_dict(cls, payload: Any) -> _Message:
        """Validate a decoded JSON object and build the message; raises MessageError. Fields
        added after version 1's first release (default None) may be missing."""
        if isinstance(payload, dict) and "v" in payload:
            if payload["v"] != SCHEMA_VERSION or isinstance(payload["v"], bool):
                raise MessageError(f"schema version {payload['v']!r}, expected {SCHEMA_VERSION}")
            payload = {k: v for k, v in payload.items() if k != "v"}
        elif isinstance(payload, dict):
            raise MessageError(f"{cls.TOPIC}: missing fields ['v']")
        return build_record(cls, cls.TOPIC, payload, _NESTED)


@dataclass(frozen=True)
class StepMessage(_Message):
    """One model time step; re-sent with a higher `revision` when late words change it."""

    t_start: float
    t_end: float
    intensity: float
    modality_weights: ModalityWeights
    present: Presence
    revision: int
    final: bool  # no later revision will follow (its words are in, or the pipeline gave up waiting)
    latency_ms: float  # capture of the step's newest sample to emission
    face: FaceReadout | None = None  # null: no face analysed in the step
    voice: VoiceReadout | None = None  # null: no speech in the step
    # Several people (contract/person_messages.py): every tracked face, and the speaking face's id.
    faces: tuple[PersonFace, ...] | None = None  # null (or missing): an earlier publisher
    speaker: int | None = None  # null: no face is speaking (or no voice activity)

    TOPIC = TOPIC_STEP

    def __post_init__(self) -> None:
        super().__post_init__()
        _span(self.t_start, self.t_end)
        _number("intensity", self.intensity, INTENSITY_MIN, INTENSITY_MAX)
        _typed("modality_weights", self.modality_weights, ModalityWeights)
        _typed("present", self.present, Presence)
        _integer("revision", self.revision)
        _boolean("final", self.final)
        _number("latency_ms", self.latency_ms, 0.0)
        _typed_or_none("face", self.face, FaceReadout)
        _typed_or_none("voice", self.voice, VoiceReadout)
        if isinstance(self.faces, list):
            object.__setattr__(self, "faces", tuple(self.faces))
        check_faces(self.faces, self.speaker)


@dataclass(frozen=True)
class UtteranceMessage(_Message):
    """The result for one utterance, closed at a pause; `label` follows from `final_intensity`."""

    utterance_id: int
    t_start: float
    t_end: float
    transcript: str
    utterance_intensity: float  # ULF on the utterance representations
    timestep_intensity: float  # SIM's summary of the utterance's time steps
    final_intensity: float  # SIM's combination of the two
    latency_ms: float  # pause detected to emission
    speaker: int | None = None  # the face id that was the speaker in most of its steps, or null

    TOPIC = TOPIC_UTTERANCE

    def __post_init__(self) -> None:
        super().__post_init__()
        _integer("utterance_id", self.utterance_id)
        _span(self.t_start, self.t_end)
        _string("transcript", self.transcript)
        for name in ("utterance_intensity", "timestep_intensity", "final_intensity"):
            _number(name, getattr(self, name), INTENSITY_MIN, INTENSITY_MAX)
        _number("latency_ms", self.latency_ms, 0.0)
        if self.speaker is not None:
            _integer("speaker", self.speaker, 1)

    @property
    def label(self) -> str:
        return label_for(self.final_intensity)

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "label": self.label}

    @classmethod
    def from_dict(cls, payload: Any) -> UtteranceMessage:
        if not isinstance(payload, dict) or "label" not in payload:
            raise MessageError("utterance: missing fields ['label']")
        rest = {k: v for k, v in payload.items() if k != "label"}
        label = payload["label"]
        if label not in LABELS:
            raise MessageError(f"label must be one of {LABELS}, got {label!r:.40}")
        msg = super().from_dict(rest)
        assert isinstance(msg, UtteranceMessage)
        return msg  # the label is recomputed from final_intensity, so a stale one cannot survive


@dataclass(frozen=True)
class StatusMessage(_Message):
    """Pipeline health, published at 1 Hz."""

    t_stream: float  # stream seconds at emission
    engine: str  # the inference back-end in use: tensorrt, onnx or eager
    engine_note: str | None  # why it is not the requested one (a fallback), else null
    fps: float  # video frames per second reaching the face extractor
    step_rate_hz: float  # time steps emitted per second
    dropped_frames: int  # since session start
    dropped_audio_blocks: int
    latency_p50_ms: float | None  # step latency over the last window; null before any step
    latency_p95_ms: float | None
    errors: int  # errors counted and survived since session start
    last_error: str | None
    sources: SourceStates
    sanitised: SanitisedCounts
    security: Security
    calibration: Calibration | None = None  # the per-person baseline's state
    model_modalities: ModelModalities | None = None  # added in v1; null: not known
    # Added in v1 (issue 33): why several faces are read by the Haar fallback (no pose, no
    # speaker) instead of Face Mesh; null: no fallback (or an earlier publisher).
    face_note: str | None = None

    TOPIC = TOPIC_STATUS

    def __post_init__(self) -> None:
        super().__post_init__()
        _number("t_stream", self.t_stream, 0.0, MAX_STREAM_S)
        _string("engine", self.engine, non_empty=True, max_len=64)
        _optional(_string, "engine_note", self.engine_note)
        _number("fps", self.fps, 0.0)
        _number("step_rate_hz", self.step_rate_hz, 0.0)
        for name in ("dropped_frames", "dropped_audio_blocks", "errors"):
            _integer(name, getattr(self, name))
        _optional(_number, "latency_p50_ms", self.latency_p50_ms, 0.0)
        _optional(_number, "latency_p95_ms", self.latency_p95_ms, 0.0)
        _optional(_string, "last_error", self.last_error)
        _typed("sources", self.sources, SourceStates)
        _typed("sanitised", self.sanitised, SanitisedCounts)
        _typed("security", self.security, Security)
        _typed_or_none("calibration", self.calibration, Calibration)
        _typed_or_none("model_modalities", self.model_modalities, ModelModalities)
        _optional(_string, "face_note", self.face_note)


@dataclass(frozen=True)
class MarkerMessage(_Message):
    """An event marker from outside the monitor (an experimenter's LSL stream), on stream time."""

    t_stream: float  # the marker's own timestamp, mapped to stream seconds
    source: str  # where it came from, e.g. the LSL stream name
    value: str  # the marker as sent (a label, a trial number, JSON...)

    TOPIC = TOPIC_MARKER

    def __post_init__(self) -> None:
        super().__post_init__()
        _number("t_stream", self.t_stream, 0.0, MAX_STREAM_S)
        _string("source", self.source, non_empty=True, max_len=256)
        _string("value", self.value, max_len=MAX_MARKER_CHARS)


Message = StepMessage | UtteranceMessage | StatusMessage | MarkerMessage
MESSAGE_TYPES: dict[str, type[_Message]] = {
    TOPIC_STEP: StepMessage,
    TOPIC_UTTERANCE: UtteranceMessage,
    TOPIC_STATUS: StatusMessage,
    TOPIC_MARKER: MarkerMessage,
}


def _span(t_start: Any, t_end: Any) -> None:
    _number("t_start", t_start, 0.0, MAX_STREAM_S)
    _number("t_end", t_end, 0.0, MAX_STREAM_S)
    if t_end < t_start:
        raise MessageError(f"t_end {t_end} precedes t_start {t_start}")


def _typed(name: str, value: Any, kind: type) -> None:
    if not isinstance(value, kind):
        raise MessageError(f"{name} must be a {kind.__name__}, got {type(value).__name__}")


def _typed_or_none(name: str, value: Any, kind: type) -> None:
    if value is not None:
        _typed(name, value, kind)


# --- framing --------------------------------------------------------------------------------------


def encode(topic: str, msg: Message | dict[str, Any]) -> list[bytes]:
    """Multipart frames `[topic, UTF-8 JSON]`; dicts are validated too: nothing invalid leaves."""
    kind = MESSAGE_TYPES.get(topic)
    if kind is None:
        raise MessageError(f"unknown topic {topic!r}")
    if isinstance(msg, dict):
        msg = kind.from_dict(msg)  # type: ignore[assignment]
    if not isinstance(msg, kind):
        raise MessageError(f"{type(msg).__name__} cannot be sent on {topic}")
    body = json.dumps(msg.to_dict(), ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return [topic.encode("ascii"), body.encode("utf-8")]


def decode_message(frames: list[bytes]) -> Message:
    """Parse and validate one multipart message into its typed record; raises MessageError."""
    if not isinstance(frames, (list, tuple)) or len(frames) != 2:
        raise MessageError(f"expected 2 frames [topic, json], got {_count(frames)}")
    raw_topic, body = frames
    if not isinstance(raw_topic, bytes) or not isinstance(body, bytes):
        raise MessageError("frames must be bytes")
    if len(body) > MAX_FRAME_BYTES:
        raise MessageError(f"message of {len(body)} bytes exceeds {MAX_FRAME_BYTES}")
    try:
        topic = raw_topic.decode("ascii")
    except UnicodeDecodeError as exc:
        raise MessageError("topic is not ASCII") from exc
    kind = MESSAGE_TYPES.get(topic)
    if kind is None:
        raise MessageError(f"unknown topic {topic[:40]!r}")
    try:
        payload = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError as exc:
        raise MessageError("body is not UTF-8") from exc
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise MessageError(f"body is not JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise MessageError(f"body must be a JSON object, got {type(payload).__name__}")
    if "v" in payload and payload["v"] != SCHEMA_VERSION:
        # Reported apart from other faults so subscribers can say "update me", not "garbage".
        raise VersionError(f"schema version {payload['v']!r:.20}, expected {SCHEMA_VERSION}")
    return kind.from_dict(payload)  # type: ignore[return-value]


def decode(frames: list[bytes]) -> tuple[str, dict[str, Any]]:
    """Parse and validate one multipart message into `(topic, JSON object)`; raises MessageError."""
    msg = decode_message(frames)
    return msg.TOPIC, msg.to_dict()


class VersionError(MessageError):
    """A well-formed message of another schema version."""


def _reject_constant(name: str) -> None:
    # Python's json module accepts NaN and Infinity; JSON (and other languages) do not.
    raise MessageError(f"{name} is not valid JSON")


def _count(frames: Any) -> str:
    try:
        return str(len(frames))
    except TypeError:
        return type(frames).__name__


def load_schema() -> dict[str, Any]:
    """The JSON Schema document (for tests and other languages; decoding does not need it)."""
    with SCHEMA_PATH.open(encoding="utf-8") as f:
        return json.load(f)


def schema_for_topic(topic: str) -> dict[str, Any]:
    """A JSON Schema that accepts exactly the messages of one topic (a $ref into the document)."""
    if topic not in MESSAGE_TYPES:
        raise MessageError(f"unknown topic {topic!r}")
    doc = load_schema()
    doc.pop("oneOf", None)
    doc["$ref"] = f"#/$defs/{topic.removeprefix('msrg.')}"
    return doc
