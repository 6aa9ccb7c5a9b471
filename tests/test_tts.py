"""espeak-ng synthesis: rate, content, and the one-line error when the binary is missing."""

from __future__ import annotations

import numpy as np
import pytest

from realtime import tts
from realtime.types import SAMPLE_RATE_HZ


def test_synthesize_returns_16k_float_speech() -> None:
    samples = tts.synthesize_speech("hello world, this is a test")
    assert samples.dtype == np.float32 and samples.ndim == 1
    duration_s = len(samples) / SAMPLE_RATE_HZ
    assert 1.0 < duration_s < 4.0
    assert 0.01 < float(np.abs(samples).max()) <= 1.0


def test_wav_round_trip(tmp_path) -> None:
    samples = tts.synthesize_speech("round trip")
    path = tts.write_wav(tmp_path / "a.wav", samples)
    back, rate_hz = tts.read_wav(path)
    assert rate_hz == SAMPLE_RATE_HZ and len(back) == len(samples)
    np.testing.assert_allclose(back, samples, atol=2.0 / 32768)


def test_resample_keeps_a_tone() -> None:
    t = np.arange(22050) / 22050
    tone = np.sin(2 * np.pi * 440 * t).astype(np.float32)
    out = tts.resample(tone, 22050, SAMPLE_RATE_HZ)
    assert len(out) == SAMPLE_RATE_HZ
    spectrum = np.abs(np.fft.rfft(out))
    assert abs(int(np.argmax(spectrum)) - 440) <= 1  # 1 Hz bins over one second


def test_missing_espeak_is_one_line(monkeypatch) -> None:
    monkeypatch.setattr(tts, "ESPEAK_BINARY", "espeak-ng-not-installed")
    with pytest.raises(tts.SpeechSynthesisError) as info:
        tts.synthesize_speech("hello")
    message = str(info.value)
    assert "\n" not in message and "apt-get install espeak-ng" in message


def test_word_gap_lengthens_speech_by_the_gaps() -> None:
    text = "this was not a great film at all"  # 8 words: 7 gaps between them
    plain = tts.synthesize_speech(text, word_gap_ms=0)
    gapped = tts.synthesize_speech(text, word_gap_ms=50)
    added_s = (len(gapped) - len(plain)) / SAMPLE_RATE_HZ
    assert 0.5 * 7 * 0.05 < added_s < 2.0 * 7 * 0.05


def test_word_gap_must_be_in_espeak_units() -> None:
    with pytest.raises(ValueError, match="multiple of 10"):
        tts.synthesize_speech("hello", word_gap_ms=25)
