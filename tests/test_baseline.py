"""The per-person baseline (realtime/baseline.py) against hand-computed statistics, its states,
its saved form, and --baseline-s / --baseline on the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from realtime.baseline import MAD_TO_SD, SCALE_FLOOR, Baseline, robust_stats
from realtime.readouts import Readouts
from realtime.types import StepFeatures

ROOT = Path(__file__).resolve().parent.parent
HOP = 0.1


def test_robust_stats_by_hand() -> None:
    # median 0.3; |x - 0.3| = 0.2 0.1 0 0.1 0.7 -> MAD 0.1 -> scale 0.14826
    centre, scale = robust_stats([0.1, 0.2, 0.3, 0.4, 1.0], floor=0.05)
    assert centre == pytest.approx(0.3)
    assert scale == pytest.approx(0.1 * MAD_TO_SD)
    # even count: median of the two middle values; MAD of [1.5, 0.5, 0.5, 1.5] is 1.0
    assert robust_stats([1.0, 2.0, 3.0, 4.0], floor=0.0) == pytest.approx((2.5, MAD_TO_SD))
    # a constant baseline falls back to the floor instead of dividing by zero
    assert robust_stats([0.2] * 7, floor=0.05) == pytest.approx((0.2, 0.05))


def test_calibrating_then_ready_with_hand_computed_z() -> None:
    b = Baseline(0.5, HOP, expect_face=True, expect_voice=False)
    assert b.status()["state"] == "calibrating" and b.progress == 0.0
    values = [0.1, 0.2, 0.3, 0.4, 1.0]
    results = [b.observe("face", {"valence": v, "arousal": -v}) for v in values]
    assert results[:4] == [None] * 4  # calibrating: no relative values yet
    status = b.status()
    assert status["state"] == "ready" and status["progress"] == 1.0
    assert status["face_s"] == pytest.approx(0.5)
    # the step that completes the baseline is already given relative to it
    assert results[4]["valence"] == pytest.approx((1.0 - 0.3) / (0.1 * MAD_TO_SD))
    rel = b.observe("face", {"valence": 0.6, "arousal": -0.6})
    assert rel["valence"] == pytest.approx(0.3 / 0.14826, rel=1e-6)
    assert rel["arousal"] == pytest.approx(-0.3 / 0.14826, rel=1e-6)
    # frozen: later values do not move the reference
    for _ in range(50):
        b.observe("face", {"valence": 5.0, "arousal": 5.0})
    assert b.observe("face", {"valence": 0.6, "arousal": -0.6}) == rel


def test_progress_is_the_least_advanced_expected_modality() -> None:
    b = Baseline(1.0, HOP)  # face and voice expected
    for _ in range(10):
        b.observe("face", {"valence": 0.0, "arousal": 0.0})
    for _ in range(3):
        b.observe("voice", {"loudness": 1.0, "pitch": 25.0, "pitch_variability": None,
                            "arousal": 0.1})  # fmt: skip
    status = b.status()
    assert status["state"] == "calibrating"
    assert status["progress"] == pytest.approx(0.3)
    assert status["face_s"] == pytest.approx(1.0) and status["voice_s"] == pytest.approx(0.3)
    for _ in range(7):
        rel = b.observe("voice", {"loudness": 1.0, "pitch": 25.0, "pitch_variability": None,
                                  "arousal": 0.1})  # fmt: skip
    assert b.status()["state"] == "ready"
    assert rel["pitch_variability"] is None  # never measured: no statistic, no relative value
    assert rel["loudness"] == 0.0  # constant: (x - median) / floor
    assert b.parts["voice"].stats["loudness"] == pytest.approx((1.0, SCALE_FLOOR["loudness"]))


def test_zero_turns_the_baseline_off() -> None:
    b = Baseline(0, HOP)
    assert b.observe("face", {"valence": 0.3, "arousal": 0.1}) is None
    assert b.status() == {"state": "off", "baseline_s": 0.0, "progress": 0.0, "face_s": 0.0,
                          "voice_s": 0.0, "loaded": False}  # fmt: skip


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_invalid_seconds_are_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="--baseline-s"):
        Baseline(bad, HOP)


def _step(seq: int, valence_class: int) -> StepFeatures:
    visual = np.zeros(12, np.float32)
    visual[valence_class] = 0.7
    visual[6] = 0.3
    visual[11] = 0.8
    return StepFeatures(seq=seq, t_start_s=seq * HOP, t_end_s=(seq + 1) * HOP,
                        text=np.zeros(384, np.float32), audio=np.zeros(25, np.float32),
                        visual=visual, present=(False, False, True),
                        t_newest_capture_s=(seq + 1) * HOP)  # fmt: skip


def test_saved_baseline_gives_a_replay_the_same_readouts() -> None:
    steps = [_step(i, (i * 5) % 6) for i in range(60)]
    live = Readouts(Baseline(2.0, HOP, expect_voice=False))
    first = [live.add(s).face for s in steps]
    saved = json.loads(json.dumps(live.baseline.to_json()))  # through JSON, as baseline.json
    replay = Readouts(Baseline.from_json(saved, HOP))
    again = [replay.add(s).face for s in steps]
    ready_at = next(i for i, f in enumerate(first) if f.baseline is not None)
    assert ready_at == 19  # 20 steps of 0.1 s
    assert again[ready_at:] == first[ready_at:]
    assert all(f.baseline is not None for f in again)  # the replay has it from the start
    assert replay.baseline.status()["loaded"] is True


@pytest.mark.parametrize(
    "data, match",
    [({"kind": "x"}, "not an affect-monitor baseline"),
     ({"kind": "affect-monitor baseline", "version": 9, "baseline_s": 1}, "version"),
     ({"kind": "affect-monitor baseline", "version": 1, "baseline_s": 1,
       "face": {"median": {"valence": 0.1}, "scale": {"valence": -1.0}}}, "must be > 0")],
)  # fmt: skip
def test_bad_baseline_files_are_refused(data: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Baseline.from_json(data, HOP)


@pytest.mark.parametrize(
    "args, expected",
    [(["--baseline-s", "-5"], "--baseline-s must be >= 0"),
     (["--baseline-s", "abc"], "--baseline-s must be a number of seconds, got 'abc'"),
     (["--baseline-s", "nan"], "--baseline-s must be >= 0"),
     (["--baseline", "/nonexistent/baseline.json"], "cannot read it")],
)  # fmt: skip
def test_bad_command_line_values_give_one_line(args: list[str], expected: str) -> None:
    result = subprocess.run([sys.executable, str(ROOT / "main.py"), "--demo", "--headless", *args],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_a_baseline_file_that_is_not_one_gives_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "baseline.json"
    bad.write_text('{"kind": "something else"}')
    result = subprocess.run([sys.executable, str(ROOT / "main.py"), "--demo", "--headless",
                             "--baseline", str(bad)],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)  # fmt: skip
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert "not an affect-monitor baseline" in lines[0] and str(bad) in lines[0]
