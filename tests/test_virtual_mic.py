"""A real microphone path end to end: a private PulseAudio server with a null sink, `main.py
--mic pulse` recording its monitor through PortAudio and ALSA's pulse plugin, espeak-ng speech
played into the sink with `paplay`, and the sink unloaded and loaded again mid-session: the
microphone is reopened and the second sentence still arrives. Skips with the reason where
PulseAudio cannot run (set-up installs pulseaudio, pulseaudio-utils and libasound2-plugins)."""

from __future__ import annotations

import csv
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from realtime.tts import silence, synthesize_speech, write_wav

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def _run(env: dict, *cmd: str, check: bool = True) -> str:
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=20)
    if check and out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {out.stderr.strip()[:300]}")
    return out.stdout


def _null_sink(env: dict) -> str:
    """Load the sink the session records from (its monitor is the default source)."""
    module = _run(env, "pactl", "load-module", "module-null-sink", "sink_name=vmic").strip()
    _run(env, "pactl", "set-default-source", "vmic.monitor")
    return module


@pytest.fixture()
def pulse():
    missing = [t for t in ("pulseaudio", "pactl", "paplay") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"PulseAudio is not installed ({', '.join(missing)} missing)")
    if not Path("/usr/lib/x86_64-linux-gnu/alsa-lib/libasound_module_pcm_pulse.so").exists() and \
            not list(Path("/usr/lib").glob("*/alsa-lib/libasound_module_pcm_pulse.so")):  # fmt: skip
        pytest.skip("ALSA's pulse plugin (libasound2-plugins) is not installed")
    run_dir = Path(tempfile.mkdtemp(prefix="pa-"))  # short: a socket path has ~100 characters
    os.chmod(run_dir, 0o700)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(run_dir), "PULSE_SERVER": f"unix:{run_dir}/native"}
    daemon = subprocess.Popen(
        ["pulseaudio", "-n", "--daemonize=no", "--exit-idle-time=-1", "--use-pid-file=no",
         f"--load=module-native-protocol-unix auth-anonymous=1 socket={run_dir}/native"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while subprocess.run(["pactl", "info"], env=env, capture_output=True).returncode != 0:
            if daemon.poll() is not None or time.monotonic() > deadline:
                pytest.skip(f"PulseAudio did not start here: {daemon.stderr.read()[-300:]}")
            time.sleep(0.2)
        module = _null_sink(env)
        probe = subprocess.run(
            [sys.executable, "-c", "import sounddevice as sd; print([d['name'] for d in sd.query_devices()])"],
            env=env, capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        if "'pulse'" not in probe.stdout:
            pytest.skip(f"PortAudio does not list the pulse input here: {probe.stdout.strip()}")
        yield env, module
    finally:
        daemon.terminate()
        daemon.wait(10)
        shutil.rmtree(run_dir, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_speech_into_a_virtual_microphone_and_a_sink_that_comes_back(pulse, tmp_path):
    env, module = pulse
    say = {}
    for name, text in (("first", "What a wonderful day, I love this."),
                       ("second", "This is terrible, I hate it.")):  # fmt: skip
        say[name] = write_wav(tmp_path / f"{name}.wav",
                              np.concatenate([synthesize_speech(text), silence(1.5)]))  # fmt: skip
    record = tmp_path / "rec"
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "main.py"), "--mic", "pulse", "--headless", "--duration", "30",
         "--record", str(record), "--publish", f"tcp://127.0.0.1:{_free_port()}"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()

    def wait_for(text: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not any(text in line for line in lines):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"no {text!r} within {timeout_s} s:\n{''.join(lines)[-3000:]}")
            time.sleep(0.1)

    try:
        wait_for("microphone: pulse at", 180)  # the models load first
        time.sleep(1.0)
        _run(env, "paplay", "--device=vmic", str(say["first"]))
        wait_for("utterance   0", 30)
        _run(env, "pactl", "unload-module", module)  # the device disappears mid-session
        wait_for("reopening it", 15)
        time.sleep(1.0)
        _null_sink(env)  # ... and comes back
        wait_for("microphone back", 20)
        _run(env, "paplay", "--device=vmic", str(say["second"]))
        wait_for("utterance   1", 30)
    finally:
        proc.wait(60)
    reader.join(5)
    log = "".join(lines)
    assert proc.returncode == 0, log[-3000:]
    with open(record / "utterances.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2, log[-3000:]
    assert "wonderful" in rows[0]["transcript"].lower() and float(rows[0]["final_intensity"]) > 0.5
    assert "terrible" in rows[1]["transcript"].lower() and float(rows[1]["final_intensity"]) < -0.5
    assert "microphone lost" in log  # reported while it was gone (status and log) ...
    assert log.count("microphone: pulse at") == 2  # ... then opened a second time


@pytest.mark.xfail(strict=False, reason="issue 32, not done: the microphone opens only after "
                   "`import torch` and the session module's imports (~2-3 s on a busy 2-core "
                   "host), so most of a sentence played at second 1 is over before capture "
                   "starts; seen: only its tail was heard")
def test_speech_one_second_after_launch_is_heard(pulse, tmp_path):
    """Listen at once: the microphone opens before the models load, so a sentence played into
    it one second after launch (long before the models are ready) arrives as an utterance with
    the right sign."""
    env, _module = pulse
    wav = write_wav(tmp_path / "early.wav", np.concatenate(
        [synthesize_speech("What a wonderful day, I love this."), silence(1.5)]))  # fmt: skip
    record = tmp_path / "rec"
    launched = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "main.py"), "--mic", "pulse", "--headless", "--duration", "40",
         "--record", str(record), "--publish", f"tcp://127.0.0.1:{_free_port()}"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    lines: list[tuple[float, str]] = []
    reader = threading.Thread(target=lambda: lines.extend(
        (time.monotonic() - launched, line) for line in iter(proc.stdout.readline, "")),
        daemon=True)  # fmt: skip
    reader.start()
    try:
        time.sleep(1.0)
        _run(env, "paplay", "--device=vmic", str(wav))  # while the models are still loading
        deadline = time.monotonic() + 180
        while not any("wonderful" in line.lower() for _, line in lines if "utterance" in line):
            assert proc.poll() is None and time.monotonic() < deadline, "".join(
                line for _, line in lines)[-3000:]  # fmt: skip
            time.sleep(0.2)
    finally:
        proc.terminate()
        proc.wait(60)
    reader.join(5)
    opened = next(t for t, line in lines if "microphone: pulse at" in line)
    heard = next(t for t, line in lines if "utterance" in line and "wonderful" in line.lower())
    print("".join(line for _, line in lines if "utterance" in line or "captured" in line))
    print(f"launch to microphone open {opened:.1f} s, to the sentence's utterance {heard:.1f} s")
    assert opened < 1.0 + 3.0  # opened before the sentence ended: nothing of it was missed
    with open(record / "utterances.csv") as f:
        rows = list(csv.DictReader(f))
    said = [r for r in rows if "wonderful" in r["transcript"].lower()]
    assert said and float(said[0]["final_intensity"]) > 0.5, rows
    assert float(said[0]["t_start"]) < 2.0  # the words from second 1 on, not a later part
