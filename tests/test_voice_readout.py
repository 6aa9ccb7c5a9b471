"""The fitted voice readouts (realtime/voice_readout.py) and the labelled-speech evaluation:
the shipped file, bad files, and real RAVDESS actors through the live audio path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from realtime.aligner import Aligner, AlignerOptions
from realtime.audio_frontend import AudioFrontEnd
from realtime.baseline import Baseline
from realtime.readouts import Readouts
from realtime.replay import audio_blocks
from realtime.stream_events import SpeechScored, StreamEnded, VoiceAnalysed
from realtime.voice_readout import DEFAULT_PATH, VoiceReadoutError, load_voice_readout

RAVDESS = Path(__file__).resolve().parents[2] / "shared" / "data" / "emotion-speech" / "ravdess"
needs_ravdess = pytest.mark.skipif(not RAVDESS.is_dir(), reason="RAVDESS is not in ../shared/data")
DEV_ACTOR = "16"  # kept out of the readout's fit and of the model's training


def test_the_shipped_readout_is_the_documented_linear_function() -> None:
    model = load_voice_readout()
    blob = json.loads(DEFAULT_PATH.read_text())
    rng = np.random.default_rng(0)
    for _ in range(20):
        x = rng.normal(np.array(blob["mean"]), np.array(blob["std"]))
        z = (x - np.array(blob["mean"])) / np.array(blob["std"])
        by_hand = blob["arousal"]["bias"] + np.dot(blob["arousal"]["weights"], z)
        assert model.arousal(x) == pytest.approx(float(np.clip(by_hand, -1, 1)))
    assert model.arousal(np.full(25, 1e6)) in (-1.0, 1.0)  # bounded
    assert model.arousal(np.array(blob["mean"])) == pytest.approx(blob["arousal"]["bias"])
    # it records what it was fitted and checked on, and whether a valence passed its rule
    fitted = blob["fitted"]
    assert fitted["arousal"]["ships"] and fitted["arousal"]["dev_auc"] > fitted["arousal"]["dev_auc_formula"]
    assert (blob["valence"] is not None) == fitted["valence"]["ships"] == model.has_valence
    assert not set(fitted["train_speakers"]) & set(fitted["dev_speakers"])


@pytest.mark.parametrize(
    "content, message",
    [(None, "does not exist"), ("{", "not readable JSON"),
     ('{"mean": [0], "std": [1], "arousal": {"weights": [0]}}', "must be 25 finite numbers")],
)  # fmt: skip
def test_a_bad_readout_file_is_one_line(tmp_path: Path, content, message) -> None:  # noqa: ANN001
    path = tmp_path / "readout.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(VoiceReadoutError, match=message) as err:
        load_voice_readout(path)
    assert "\n" not in str(err.value)


def _voice_steps(path: Path):  # noqa: ANN202
    """A clip's aligned steps through the live audio front end (openSMILE, VAD, aligner)."""
    import soundfile as sf

    signal, rate = sf.read(path, dtype="float32")
    assert rate == 16000
    front = AudioFrontEnd(600.0, voice_chunk_s=1.0)
    aligner = Aligner(AlignerOptions(expect_video=False))
    end_s = 0.0
    with front:
        for block in audio_blocks(signal):
            update = front.push(block)
            aligner.push(VoiceAnalysed(update.voice, block.t_start_s))
            aligner.push(SpeechScored(tuple(update.speech), front.decided_until_s))
            end_s = block.t_end_s
        aligner.push(VoiceAnalysed(front.flush().voice, end_s))
    aligner.push(StreamEnded("audio", end_s))
    return list(aligner.flush().new)


def _clip(emotion: str, intensity: str = "02", statement: str = "01", rep: str = "01") -> Path:
    return RAVDESS / f"Actor_{DEV_ACTOR}" / f"03-01-{emotion}-{intensity}-{statement}-{rep}-{DEV_ACTOR}.flac"


@needs_ravdess
def test_an_angry_voice_reads_more_aroused_than_a_sad_one() -> None:
    means = {}
    for name, code in (("angry", "05"), ("sad", "04")):
        readouts = Readouts()
        voices = [o.voice for o in map(readouts.add, _voice_steps(_clip(code))) if o.voice]
        assert len(voices) >= 5, name  # the speech is detected
        means[name] = np.mean([v.arousal for v in voices])
    assert means["angry"] > means["sad"] + 0.2, means


@needs_ravdess
def test_the_baseline_works_on_the_fitted_readout() -> None:
    """Calibrated on a calm clip of the actor, an angry one reads above the actor's own level."""
    baseline = Baseline(1.0, 0.1, expect_face=False)
    readouts = Readouts(baseline)
    for step in _voice_steps(_clip("02", "01")):  # calm, normal intensity
        readouts.add(step)
    assert baseline.parts["voice"].ready
    rel = [o.voice.baseline.arousal for o in map(readouts.add, _voice_steps(_clip("05"))) if o.voice]
    assert rel and np.median(rel) > 1.0  # robust z above the calm reference
