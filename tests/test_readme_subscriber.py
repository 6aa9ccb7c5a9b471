"""The README's ten-line subscriber, run unchanged, against messages that carry the readout
blocks (face, voice, calibration): new fields must not break existing subscribers."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import zmq

from contract import messages

ROOT = Path(__file__).resolve().parent.parent
README_ENDPOINT = "tcp://127.0.0.1:5556"  # the default --publish endpoint the snippet connects to


def readme_subscriber() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"A subscriber in ten lines:\s*```python\n(.*?)```", text, re.S)
    assert match, "the README lost its subscriber snippet"
    return match.group(1)


def _step(seq: int) -> messages.StepMessage:
    face = messages.FaceReadout(
        messages.Expressions(0.1, 0.0, 0.1, 0.5, 0.1, 0.1, 0.1), valence=0.3, arousal=0.35,
        quality=0.8, baseline=messages.FaceBaseline(valence=1.2, arousal=-0.4),
    )  # fmt: skip
    voice = messages.VoiceReadout(loudness=0.9, pitch=24.0, pitch_variability=2.1, arousal=0.1)
    return messages.StepMessage(
        session="readme", seq=seq, t_emit=time.time(), t_start=seq / 10, t_end=(seq + 1) / 10,
        intensity=1.25, modality_weights=messages.ModalityWeights(0.6, 0.4, 0.0),
        present=messages.Presence(True, True, True), revision=0, final=True, latency_ms=5.0,
        face=face, voice=voice,
    )  # fmt: skip


def test_readme_subscriber_runs_unchanged_on_the_new_fields() -> None:
    code = readme_subscriber()
    assert README_ENDPOINT in code and 'msg["final"]' in code  # the snippet as documented
    ctx = zmq.Context.instance()
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    try:
        pub.bind(README_ENDPOINT)
    except zmq.ZMQError:
        # Another monitor on this machine holds the default port: the same code, pointed at a
        # free port (the endpoint string is the only change).
        port = pub.bind_to_random_port("tcp://127.0.0.1")
        code = code.replace(README_ENDPOINT, f"tcp://127.0.0.1:{port}")
    proc = subprocess.Popen([sys.executable, "-u", "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        seq = 0
        while time.monotonic() < deadline and proc.poll() is None:
            pub.send_multipart(messages.encode(messages.TOPIC_STEP, _step(seq)))
            seq += 1
            time.sleep(0.05)
            if seq >= 40:
                break
        time.sleep(0.5)
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=10)
        pub.close()
    assert "Traceback" not in err, err
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) >= 10, (out, err)  # slow joiner: the first few may be missed
    assert all(re.fullmatch(r"\s*\d+\.\d s  \+1\.25", line) for line in lines), lines[:5]
