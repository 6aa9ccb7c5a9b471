"""The wire format: builders, encode/decode, label thresholds, agreement with the JSON Schema."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import jsonschema
import pytest

from contract import messages as m
from ui.synthetic import SyntheticOptions, synthetic_session


def _samples() -> dict[str, dict]:
    """One valid JSON object per topic, from the synthetic session (which uses the builders)."""
    found: dict[str, dict] = {}
    for _, msg in synthetic_session(SyntheticOptions(duration_s=8.0)):
        found.setdefault(msg.TOPIC, msg.to_dict())
    assert set(found) == set(m.TOPICS)
    return found


SAMPLES = _samples()


def _validator(topic: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(m.schema_for_topic(topic))


def test_schema_is_valid_draft_2020_12() -> None:
    jsonschema.Draft202012Validator.check_schema(m.load_schema())


@pytest.mark.parametrize("topic", m.TOPICS)
def test_builders_round_trip_and_pass_schema(topic: str) -> None:
    frames = m.encode(topic, SAMPLES[topic])
    assert frames[0] == topic.encode()
    got_topic, payload = m.decode(frames)
    assert (got_topic, payload) == (topic, SAMPLES[topic])
    assert list(payload)[0] == "v" and payload["v"] == m.SCHEMA_VERSION
    _validator(topic).validate(payload)
    jsonschema.validate(payload, m.load_schema())  # the oneOf picks exactly one definition


def test_every_synthetic_message_passes_schema() -> None:
    validators = {t: _validator(t) for t in m.TOPICS}
    for _, msg in synthetic_session(SyntheticOptions(duration_s=20.0)):
        topic, payload = m.decode(m.encode(msg.TOPIC, msg))
        validators[topic].validate(payload)


def _set(obj: dict, path: str, value: object) -> dict:
    obj = copy.deepcopy(obj)
    *parents, leaf = path.split(".")
    target = obj
    for p in parents:
        target = target[p]
    if value is _DELETE:
        del target[leaf]
    else:
        target[leaf] = value
    return obj


_DELETE = object()
INVALID = [
    (m.TOPIC_STEP, "v", 2),
    (m.TOPIC_STEP, "v", _DELETE),
    (m.TOPIC_STEP, "session", ""),
    (m.TOPIC_STEP, "seq", -1),
    (m.TOPIC_STEP, "seq", "7"),
    (m.TOPIC_STEP, "seq", True),
    (m.TOPIC_STEP, "t_emit", None),
    (m.TOPIC_STEP, "intensity", 3.5),
    (m.TOPIC_STEP, "intensity", "1.0"),
    (m.TOPIC_STEP, "intensity", False),
    (m.TOPIC_STEP, "modality_weights.audio", 1.5),
    (m.TOPIC_STEP, "modality_weights.text", _DELETE),
    (m.TOPIC_STEP, "modality_weights.smell", 0.1),
    (m.TOPIC_STEP, "present.visual", 1),
    (m.TOPIC_STEP, "present", [True, True, True]),
    (m.TOPIC_STEP, "revision", 0.5),
    (m.TOPIC_STEP, "final", "yes"),
    (m.TOPIC_STEP, "latency_ms", -3),
    (m.TOPIC_STEP, "t_end", 2e9),
    (m.TOPIC_STATUS, "t_stream", -1),
    (m.TOPIC_STEP, "extra", 1),
    (m.TOPIC_UTTERANCE, "label", "happy"),
    (m.TOPIC_UTTERANCE, "label", _DELETE),
    (m.TOPIC_UTTERANCE, "transcript", None),
    (m.TOPIC_UTTERANCE, "final_intensity", -3.01),
    (m.TOPIC_UTTERANCE, "utterance_id", _DELETE),
    (m.TOPIC_STATUS, "engine", ""),
    (m.TOPIC_STATUS, "dropped_frames", -2),
    (m.TOPIC_STATUS, "latency_p95_ms", -1.0),
    (m.TOPIC_STATUS, "sources.camera", "unplugged"),
    (m.TOPIC_STATUS, "security.curve", None),
    (m.TOPIC_STATUS, "security", {}),
    (m.TOPIC_STATUS, "sanitised.audio", 0.5),
    (m.TOPIC_STATUS, "engine_note", 3),
    (m.TOPIC_MARKER, "t_stream", -0.1),
    (m.TOPIC_MARKER, "t_stream", _DELETE),
    (m.TOPIC_MARKER, "source", ""),
    (m.TOPIC_MARKER, "value", 7),
    (m.TOPIC_MARKER, "value", "x" * (m.MAX_MARKER_CHARS + 1)),
    (m.TOPIC_MARKER, "label", "stimulus"),
]


@pytest.mark.parametrize(("topic", "path", "value"), INVALID)
def test_invalid_variants_fail_python_and_schema(topic: str, path: str, value: object) -> None:
    bad = _set(SAMPLES[topic], path, value)
    with pytest.raises(m.MessageError):
        m.decode([topic.encode(), json.dumps(bad).encode()])
    with pytest.raises(jsonschema.ValidationError):
        _validator(topic).validate(bad)
    with pytest.raises(m.MessageError):
        m.encode(topic, bad)


def test_optional_fields_accept_null() -> None:
    ok = _set(SAMPLES[m.TOPIC_STATUS], "latency_p50_ms", None)
    ok = _set(ok, "last_error", "camera read failed")
    assert m.decode(m.encode(m.TOPIC_STATUS, ok))[1]["latency_p50_ms"] is None
    _validator(m.TOPIC_STATUS).validate(ok)


def test_t_end_before_t_start_is_rejected_by_python() -> None:
    bad = _set(SAMPLES[m.TOPIC_STEP], "t_end", 0.0)
    bad["t_start"] = 1.0
    with pytest.raises(m.MessageError, match="precedes"):
        m.decode([b"msrg.step", json.dumps(bad).encode()])


@pytest.mark.parametrize(
    "frames",
    [
        [],
        [b"msrg.step"],
        [b"msrg.step", b"{}", b"x"],
        [b"msrg.nope", b"{}"],
        [b"\xff\xfe", b"{}"],
        [b"msrg.step", b"\xff\xfe"],
        [b"msrg.step", b"{not json"],
        [b"msrg.step", b"[1, 2]"],
        [b"msrg.step", b'{"v": NaN}'],
        [b"msrg.step", b"[" * 100_000],
        [b"msrg.step", b" " * (m.MAX_FRAME_BYTES + 1)],
        "not frames",
    ],
)
def test_malformed_frames_raise_message_error(frames: list[bytes]) -> None:
    with pytest.raises(m.MessageError):
        m.decode(frames)


def test_wrong_version_is_a_version_error() -> None:
    body = json.dumps(_set(SAMPLES[m.TOPIC_STEP], "v", 99)).encode()
    with pytest.raises(m.VersionError):
        m.decode([b"msrg.step", body])


def test_nan_never_leaves_the_encoder() -> None:
    with pytest.raises(m.MessageError):
        m.encode(m.TOPIC_STEP, _set(SAMPLES[m.TOPIC_STEP], "intensity", float("nan")))


def test_builder_rejects_bad_values_at_construction() -> None:
    with pytest.raises(m.MessageError):
        m.ModalityWeights(text=0.5, audio=0.5, visual=-0.1)
    with pytest.raises(m.MessageError):
        m.Presence(text=1, audio=True, visual=True)  # type: ignore[arg-type]


def test_encode_refuses_a_message_on_the_wrong_topic() -> None:
    step = m.StepMessage.from_dict(SAMPLES[m.TOPIC_STEP])
    with pytest.raises(m.MessageError):
        m.encode(m.TOPIC_STATUS, step)


@pytest.mark.parametrize(
    ("x", "label"),
    [(-3.0, "negative"), (-0.51, "negative"), (-0.5, "neutral"), (0.0, "neutral"),
     (0.5, "neutral"), (0.5001, "positive"), (3.0, "positive")],
)
def test_label_thresholds(x: float, label: str) -> None:
    assert m.label_for(x) == label


def test_utterance_label_follows_final_intensity() -> None:
    utt = m.UtteranceMessage.from_dict(SAMPLES[m.TOPIC_UTTERANCE])
    assert utt.to_dict()["label"] == m.label_for(utt.final_intensity)
    stale = _set(SAMPLES[m.TOPIC_UTTERANCE], "label", "negative")
    stale["final_intensity"] = 2.0
    assert m.decode([b"msrg.utterance", json.dumps(stale).encode()])[1]["label"] == "positive"


def test_security_exposed_flag() -> None:
    assert m.Security("tcp://0.0.0.0:5556", loopback=False, curve=False, insecure=True).exposed
    assert not m.Security("tcp://0.0.0.0:5556", loopback=False, curve=True, insecure=False).exposed
    assert not m.Security("tcp://127.0.0.1:1", loopback=True, curve=False, insecure=False).exposed


def test_messages_module_imports_stdlib_only() -> None:
    code = (
        "import sys, contract.messages; "
        "bad = [n for n in ('numpy', 'torch', 'zmq', 'PyQt6', 'jsonschema') if n in sys.modules]; "
        "sys.exit(1 if bad else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_marker_keeps_its_text_and_stream_time() -> None:
    marker = m.MarkerMessage(session="s", seq=3, t_emit=1.0, t_stream=12.5, source="PsychoPy",
                             value='{"trial": 4, "event": "onset"}')
    got = m.decode_message(m.encode(m.TOPIC_MARKER, marker))
    assert got == marker
    _validator(m.TOPIC_MARKER).validate(marker.to_dict())
