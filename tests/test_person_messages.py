"""msrg.step's `faces` and `speaker`, msrg.utterance's `speaker` (issue 33): additive in version 1."""

from __future__ import annotations

import copy
import json

import jsonschema
import pytest

from contract import messages as m
from ui.synthetic import SyntheticOptions, synthetic_session


def _samples() -> dict[str, dict]:
    found: dict[str, dict] = {}
    for _, msg in synthetic_session(SyntheticOptions(duration_s=8.0)):
        if msg.TOPIC == m.TOPIC_STEP and msg.face is None:
            continue
        found.setdefault(msg.TOPIC, msg.to_dict())
    return found


SAMPLES = _samples()


def _person(fid: int, x: int, speaking: float) -> dict:
    face = SAMPLES[m.TOPIC_STEP]["face"]
    return {"id": fid, "box": [x, 40, 120, 150], "expressions": face["expressions"],
            "valence": face["valence"], "arousal": face["arousal"], "quality": 0.9,
            "speaking": speaking, "pose": {"yaw": 12.5, "pitch": -3.0, "roll": 1.0},
            "baseline": None}


def _step(**extra) -> dict:
    return {**copy.deepcopy(SAMPLES[m.TOPIC_STEP]), **extra}


def _check(topic: str, payload: dict) -> m.Message:
    jsonschema.Draft202012Validator(m.schema_for_topic(topic)).validate(payload)
    msg = m.decode_message(m.encode(topic, payload))
    assert json.loads(json.dumps(msg.to_dict())) == payload  # a lossless round trip
    return msg


def test_a_step_with_two_people_round_trips_and_passes_schema():
    payload = _step(faces=[_person(1, 10, 0.9), _person(2, 300, 0.1)], speaker=1)
    msg = _check(m.TOPIC_STEP, payload)
    assert [f.id for f in msg.faces] == [1, 2] and msg.faces[0].pose.yaw == 12.5
    assert msg.face == m.decode_message(m.encode(m.TOPIC_STEP, SAMPLES[m.TOPIC_STEP])).face


def test_an_earlier_publishers_step_and_utterance_still_decode():
    step = m.decode_message(m.encode(m.TOPIC_STEP, SAMPLES[m.TOPIC_STEP]))
    assert step.faces is None and step.speaker is None
    old = {k: v for k, v in step.to_dict().items() if k not in ("faces", "speaker")}
    assert m.decode_message(m.encode(m.TOPIC_STEP, old)) == step
    utt = copy.deepcopy(SAMPLES[m.TOPIC_UTTERANCE])
    utt.pop("speaker", None)
    assert m.decode_message(m.encode(m.TOPIC_UTTERANCE, utt)).speaker is None
    assert _check(m.TOPIC_UTTERANCE, {**utt, "speaker": 2}).speaker == 2


@pytest.mark.parametrize("bad", [
    {"faces": [_person(1, 0, 0.5)] * 2},  # ids repeat
    {"faces": [_person(i, 0, 0.1) for i in range(1, 6)]},  # five faces
    {"faces": [_person(1, 0, 0.5)], "speaker": 3},  # speaker not in view
    {"faces": [{**_person(1, 0, 0.5), "box": [0, 0, 0, 10]}]},  # empty box
    {"faces": [{**_person(1, 0, 1.5)}]},  # speaking is a probability
    {"faces": [{**_person(1, 0, 0.5), "pose": {"yaw": 400, "pitch": 0, "roll": 0}}]},
    {"faces": {"id": 1}},
])
def test_bad_faces_are_refused_in_one_line(bad):
    with pytest.raises(m.MessageError) as err:
        m.decode_message(m.encode(m.TOPIC_STEP, _step(**bad)))
    assert "\n" not in str(err.value)
