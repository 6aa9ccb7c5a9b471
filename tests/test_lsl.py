"""The LSL bridge with real pylsl and real sockets, on loopback only.

tests/conftest.py points LSLAPICFG at tests/lsl_api.cfg (discovery on 127.0.0.1, IPv6 off) for
this process and every child, so nothing here is announced beyond this machine. Stream names are
unique per test so that parallel runs, or a monitor running for real, cannot cross.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from contract import messages as m
from realtime.clock import StreamClock
from realtime.lsl import (
    STEP_CHANNELS,
    LslClock,
    LslError,
    LslMarkerInlet,
    LslOptions,
    LslOutlet,
    import_pylsl,
    lsl_clock_offset_s,
)

pylsl = pytest.importorskip("pylsl")
ROOT = Path(__file__).resolve().parent.parent
STEP_HZ = 10.0


def _name(tag: str) -> str:
    return f"am-test-{tag}-{uuid.uuid4().hex[:8]}"


def _resolve(name: str, timeout_s: float = 5.0):
    found = pylsl.resolve_byprop("name", name, 1, timeout_s)
    assert found, f"LSL stream {name} not found on loopback"
    return found[0]


READOUT_STEP = 2  # the one step with face and voice readouts
FACE = m.FaceReadout(m.Expressions(0.1, 0.0, 0.2, 0.4, 0.1, 0.1, 0.1), valence=0.2,
                     arousal=0.4, quality=0.7, baseline=m.FaceBaseline(1.5, -0.5))  # fmt: skip
VOICE = m.VoiceReadout(loudness=0.9, pitch=None, pitch_variability=1.5, arousal=-0.3)


def _step(seq: int, revision: int, final: bool, intensity: float = 0.0) -> m.StepMessage:
    hop = 1.0 / STEP_HZ
    readouts = seq == READOUT_STEP
    return m.StepMessage(
        session="s", seq=seq, t_emit=1.0, t_start=seq * hop, t_end=(seq + 1) * hop,
        intensity=intensity, modality_weights=m.ModalityWeights(0.2, 0.3, 0.5),
        present=m.Presence(text=seq % 2 == 0, audio=True, visual=readouts),
        revision=revision, final=final, latency_ms=5.0,
        face=FACE if readouts else None, voice=VOICE if readouts else None,
    )  # fmt: skip


def _marker_outlet(name: str):
    info = pylsl.StreamInfo(name, "Markers", 1, pylsl.IRREGULAR_RATE, pylsl.cf_string, name)
    return pylsl.StreamOutlet(info)


# --- clock ----------------------------------------------------------------------------------------


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="CLOCK_MONOTONIC is Linux's")
def test_lsl_clock_is_time_monotonic_on_linux() -> None:
    # liblsl's steady_clock and time.monotonic() both read CLOCK_MONOTONIC here.
    assert abs(lsl_clock_offset_s(pylsl.local_clock)) < 1e-3


def test_clock_maps_stream_seconds_both_ways_and_follows_a_restart() -> None:
    clock = StreamClock(origin_monotonic_s=100.0)
    lsl_clock = LslClock(clock, offset_s=2.5)
    assert lsl_clock.to_lsl(1.25) == pytest.approx(103.75)
    assert lsl_clock.to_stream(103.75) == pytest.approx(1.25)
    clock.restart()  # the pipeline restarts its clock after the LSL streams exist
    assert lsl_clock.to_lsl(0.0) == pytest.approx(clock.origin_monotonic_s + 2.5)


def test_missing_pylsl_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pylsl", None)  # makes `import pylsl` raise ImportError
    with pytest.raises(LslError, match=r"pip install -e \.\[lsl\]"):
        import_pylsl()


# --- outlet ---------------------------------------------------------------------------------------


def test_outlet_sends_final_steps_once_in_order_at_capture_time() -> None:
    clock = StreamClock(origin_monotonic_s=time.monotonic() - 30.0)
    name = _name("affect")
    outlet = LslOutlet(LslOptions(outlets=True, name=name), clock, STEP_HZ, session="s1")
    try:
        steps_in = pylsl.StreamInlet(_resolve(name))
        utts_in = pylsl.StreamInlet(_resolve(f"{name}-utterances"))
        steps_in.open_stream(5.0)
        utts_in.open_stream(5.0)
        assert outlet.wait_for_consumers(5.0)

        desc = steps_in.info(5.0).desc()
        ch = desc.child("channels").child("channel")
        labels = []
        while not ch.empty():
            labels.append((ch.child_value("label"), ch.child_value("unit")))
            ch = ch.next_sibling()
        assert labels == [(label, unit) for label, unit, _ in STEP_CHANNELS]
        assert desc.child_value("session") == "s1"
        assert steps_in.info().type() == "Affect"
        assert steps_in.info().nominal_srate() == STEP_HZ

        n = 20
        for k in range(n):  # the pipeline's pattern: provisional at once, final a few steps later
            outlet.send(_step(k, 0, final=False, intensity=-1.0))
            if k >= 3:
                outlet.send(_step(k - 3, 1, final=True, intensity=(k - 3) / 10))
        for k in range(n - 3, n):
            outlet.send(_step(k, 1, final=True, intensity=k / 10))
        outlet.send(_step(5, 2, final=True))  # a repeat must not break the stream's order
        utt = m.UtteranceMessage(
            session="s1", seq=0, t_emit=1.0, utterance_id=0, t_start=0.4, t_end=1.3,
            transcript="I loved it", utterance_intensity=1.0, timestep_intensity=0.5,
            final_intensity=0.9, latency_ms=300.0)  # fmt: skip
        outlet.send(utt)
        outlet.send(m.MarkerMessage(session="s1", seq=0, t_emit=1.0, t_stream=0.2, source="x",
                                    value="ignored"))  # fmt: skip

        samples, stamps = steps_in.pull_chunk(timeout=2.0, max_samples=100)
        while len(samples) < n:
            more, more_t = steps_in.pull_chunk(timeout=1.0, max_samples=100)
            assert more, f"only {len(samples)} of {n} steps arrived"
            samples, stamps = samples + more, stamps + more_t
        assert outlet.steps_skipped == 1
        assert [round(s[0], 4) for s in samples] == [round(k / 10, 4) for k in range(n)]
        assert samples[0][1:7] == pytest.approx([0.2, 0.3, 0.5, 1.0, 1.0, 0.0])
        assert len(samples[0]) == len(STEP_CHANNELS) == 27
        assert all(math.isnan(v) for v in samples[0][7:])  # no readouts: NaN, not zeros
        face_voice = samples[READOUT_STEP][7:]
        assert face_voice[:7] == pytest.approx([0.1, 0.0, 0.2, 0.4, 0.1, 0.1, 0.1])
        assert face_voice[7:10] == pytest.approx([0.2, 0.4, 0.7])
        assert face_voice[10] == pytest.approx(0.9) and math.isnan(face_voice[11])  # no pitch
        assert face_voice[12:14] == pytest.approx([1.5, -0.3])
        assert face_voice[14:16] == pytest.approx([1.5, -0.5])
        assert all(math.isnan(v) for v in face_voice[16:])  # voice baseline not ready
        expected = [outlet.clock.to_lsl((k + 1) / STEP_HZ) for k in range(n)]
        assert np.allclose(stamps, expected, atol=1e-6)  # capture time, not the time of sending
        assert np.allclose(np.diff(stamps), 1.0 / STEP_HZ, atol=1e-6)

        body, t_utt = utts_in.pull_sample(timeout=2.0)
        assert json.loads(body[0]) == utt.to_dict()
        assert t_utt == pytest.approx(outlet.clock.to_lsl(utt.t_start), abs=1e-6)
        assert utts_in.pull_sample(timeout=0.2) == (None, None)  # the marker was not echoed
    finally:
        outlet.close()
    outlet.close()  # twice is harmless
    outlet.send(_step(99, 0, final=True))  # after close: ignored, not an error


# --- marker inlet ---------------------------------------------------------------------------------


def test_marker_inlet_publishes_markers_on_stream_time_without_spinning() -> None:
    name = _name("markers")
    sender = _marker_outlet(name)
    clock = StreamClock()
    got: list[m.MarkerMessage] = []
    inlet = LslMarkerInlet(LslOptions(markers_from=name), clock, "s1", publish=got.append)
    try:
        inlet.start()
        assert sender.wait_for_consumers(5.0)
        sender.push_sample(["too early"], inlet.clock.to_lsl(-5.0))
        t_push = pylsl.local_clock()
        sender.push_sample(["stimulus A"], t_push)
        sender.push_sample(['{"trial": 2}'], t_push + 0.5)
        deadline = time.monotonic() + 5.0
        while len(got) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [mk.value for mk in got] == ["stimulus A", '{"trial": 2}']
        assert [mk.seq for mk in got] == [0, 1]
        assert got[0].source == name and got[0].session == "s1"
        assert got[0].t_stream == pytest.approx(inlet.clock.to_stream(t_push), abs=2e-3)
        assert got[1].t_stream - got[0].t_stream == pytest.approx(0.5, abs=1e-3)
        assert inlet.dropped == 1  # stamped before the session started
        # Waiting for markers blocks in liblsl: an idle second costs next to no CPU.
        cpu_s = time.process_time()
        time.sleep(1.0)
        assert time.process_time() - cpu_s < 0.2
    finally:
        inlet.close()
    assert not inlet._thread.is_alive()  # noqa: SLF001
    inlet.close()


def test_marker_inlet_names_a_missing_stream_in_one_line() -> None:
    opts = LslOptions(markers_from=_name("absent"), resolve_timeout_s=0.3)
    with pytest.raises(LslError, match="no LSL stream named") as err:
        LslMarkerInlet(opts, StreamClock(), "s1", publish=lambda _msg: None)
    assert "\n" not in str(err.value)


def test_marker_inlet_refuses_a_regular_rate_stream() -> None:
    name = _name("eeg")
    eeg = pylsl.StreamOutlet(pylsl.StreamInfo(name, "EEG", 2, 250.0, pylsl.cf_float32, name))
    with pytest.raises(LslError, match="not a marker stream"):
        LslMarkerInlet(LslOptions(markers_from=name), StreamClock(), "s1", lambda _msg: None)
    del eeg


# --- the real pipeline, replaying a clip ----------------------------------------------------------


@pytest.fixture(scope="module")
def clip_and_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    import torch

    from msrg.checkpoint import save_checkpoint
    from msrg.model import MSRG
    from realtime import tts

    folder = tmp_path_factory.mktemp("lsl-clip")
    try:
        a = tts.synthesize_speech("I really loved the film, it was wonderful.")
        b = tts.synthesize_speech("The ending was awful and I hated it.")
    except Exception as exc:  # no espeak-ng on this machine
        pytest.skip(f"cannot synthesise speech: {exc}")
    clip = tts.write_wav(folder / "clip.wav", np.concatenate(
        [tts.silence(0.5), a, tts.silence(1.2), b, tts.silence(1.0)]))  # fmt: skip
    torch.manual_seed(0)
    save_checkpoint(MSRG().eval(), folder / "random.pt")
    return clip, folder / "random.pt"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # ~25 s: model loading, then an 8 s clip replayed as fast as it goes
def test_replay_reaches_an_lsl_inlet_and_markers_reach_the_recording(
    tmp_path: Path, clip_and_checkpoint: tuple[Path, Path]
) -> None:
    clip, checkpoint = clip_and_checkpoint
    name, markers_name = _name("monitor"), _name("experimenter")
    experimenter = _marker_outlet(markers_name)  # must exist before the monitor resolves it
    record = tmp_path / "rec"
    cmd = [sys.executable, "main.py", "--video", str(clip), "--headless", "--publish",
           f"tcp://127.0.0.1:{_free_port()}", "--record", str(record), "--lsl", "--lsl-name", name,
           "--lsl-markers", markers_name, "--checkpoint", str(checkpoint)]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, env=os.environ.copy())  # fmt: skip
    try:
        # A hang guard, not a speed check: the outlet appears once main.py has imported torch and
        # loaded the checkpoint, which took over a minute on a 2-core machine loaded to ~20.
        steps_in = pylsl.StreamInlet(_resolve(name, 180.0))
        utts_in = pylsl.StreamInlet(_resolve(f"{name}-utterances", 10.0))
        steps_in.open_stream(10.0)
        utts_in.open_stream(10.0)
        samples, stamps, utts, pushed = [], [], [], []
        deadline = time.monotonic() + 120.0
        while proc.poll() is None and time.monotonic() < deadline:
            value, t = f"marker {len(pushed)}", pylsl.local_clock()
            experimenter.push_sample([value], t)
            pushed.append((value, t))
            more, more_t = steps_in.pull_chunk(timeout=0.2, max_samples=1000)
            samples += more
            stamps += more_t
            utts += utts_in.pull_chunk(timeout=0.0)[0]
        _, stderr = proc.communicate(timeout=30)
        for _ in range(3):  # what was still in flight when the monitor exited
            more, more_t = steps_in.pull_chunk(timeout=0.3, max_samples=1000)
            samples += more
            stamps += more_t
            utts += utts_in.pull_chunk(timeout=0.0)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr[-2000:]
    assert f"Configuration loaded from {os.environ['LSLAPICFG']}" in stderr  # loopback config

    recorded = [json.loads(line) for line in (record / "messages.jsonl").read_text().splitlines()]
    finals = sorted((r for r in recorded if r["topic"] == m.TOPIC_STEP and r["final"]),
                    key=lambda r: r["seq"])  # fmt: skip
    assert [r["seq"] for r in finals] == list(range(len(finals))) and len(finals) >= 70
    assert len(samples) == len(finals), "every final step, once"
    assert np.allclose([s[0] for s in samples], [r["intensity"] for r in finals], atol=1e-6)
    stamps = np.asarray(stamps)
    assert np.allclose(np.diff(stamps), 1.0 / STEP_HZ, atol=1e-6)  # in order, at the step rate
    to_lsl = stamps[0] - finals[0]["t_end"]  # stream seconds -> LSL clock, one constant

    utterances = [{k: v for k, v in r.items() if k != "topic"} for r in recorded
                  if r["topic"] == m.TOPIC_UTTERANCE]  # fmt: skip
    assert len(utterances) == 2
    assert [json.loads(u[0]) for u in utts] == utterances

    markers = [r for r in recorded if r["topic"] == m.TOPIC_MARKER]
    assert markers, "no experimenter marker reached the recording"
    sent_at = dict(pushed)
    for r in markers:
        assert r["source"] == markers_name
        assert r["t_stream"] + to_lsl == pytest.approx(sent_at[r["value"]], abs=5e-3)
    assert [r["seq"] for r in markers] == list(range(len(markers)))


# --- the per-face stream (issue 33) --------------------------------------------------------------


def _person(fid: int, x: int, speaking: float, pose: bool = True) -> m.PersonFace:
    return m.PersonFace(id=fid, box=(x, 20, 90, 110), expressions=FACE.expressions, valence=0.2,
                        arousal=0.4, quality=0.8, speaking=speaking,
                        pose=m.HeadPose(10.0, -5.0, 2.0) if pose else None)  # fmt: skip


def test_faces_stream_keeps_each_person_in_a_slot() -> None:
    from realtime.lsl_faces import FACE_CHANNELS, FACE_SLOT_FIELDS

    name = _name("faces")
    outlet = LslOutlet(LslOptions(outlets=True, name=name), StreamClock(), STEP_HZ, session="s")
    try:
        faces_in = pylsl.StreamInlet(_resolve(f"{name}-faces"))
        faces_in.open_stream(5.0)
        assert outlet._faces.wait_for_consumers(5.0)  # (wait_for_consumers: the Affect stream)
        info = faces_in.info(5.0)
        assert info.type() == "AffectFaces" and info.channel_count() == len(FACE_CHANNELS) == 77
        people = [[_person(1, 10, 0.9), _person(2, 300, 0.1)],  # two people, 1 speaks
                  [_person(2, 302, 0.0, pose=False)],  # 1 is away: 2 keeps slot 2
                  [_person(3, 500, 0.0), _person(2, 303, 0.0)],  # a newcomer: the free slot 3
                  [_person(1, 12, 0.0), _person(2, 304, 0.0), _person(3, 501, 0.0)]]  # 1 is back
        for k, faces in enumerate(people):
            speaker = 1 if k == 0 else None
            outlet.send(dataclasses.replace(_step(k, 0, final=True), faces=tuple(faces),
                                            speaker=speaker))  # fmt: skip
        samples = []
        while len(samples) < len(people):
            more, _ = faces_in.pull_chunk(timeout=2.0, max_samples=10)
            assert more, f"only {len(samples)} face samples arrived"
            samples += more
    finally:
        outlet.close()
    n = len(FACE_SLOT_FIELDS)
    slot_ids = [[s[1 + i * n] for i in range(4)] for s in samples]
    assert [[-1 if math.isnan(v) else v for v in row] for row in slot_ids] == [
        [1, 2, -1, -1], [-1, 2, -1, -1], [-1, 2, 3, -1], [1, 2, 3, -1]]
    assert samples[0][0] == 1 and math.isnan(samples[1][0])  # speaker_id; NaN without one
    first = samples[0][1 : 1 + n]
    assert first[1:5] == [10, 20, 90, 110] and first[5:12] == pytest.approx(
        [0.1, 0.0, 0.2, 0.4, 0.1, 0.1, 0.1])
    assert first[15] == pytest.approx(0.9) and first[16:] == pytest.approx([10.0, -5.0, 2.0])
    away = samples[1][1 + n : 1 + 2 * n]
    assert all(math.isnan(v) for v in away[16:])  # no pose: NaN, not 0
    assert all(math.isnan(v) for v in samples[1][1 : 1 + n])  # slot 1 empty while 1 is away
