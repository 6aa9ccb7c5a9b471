"""Speech synthesis with the espeak-ng binary, for tests, benchmarks and the demo clip.

espeak-ng writes 22.05 kHz 16-bit mono; the pipeline runs at SAMPLE_RATE_HZ, so the wave is
resampled with a polyphase filter (band-limited, unlike linear interpolation, so openSMILE's
spectral descriptors on synthetic speech are not skewed by aliasing).
"""

from __future__ import annotations

import logging
import math
import shutil
import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

from realtime.types import SAMPLE_RATE_HZ

log = logging.getLogger(__name__)

ESPEAK_BINARY = "espeak-ng"
_INT16_SCALE = 32768.0


class SpeechSynthesisError(RuntimeError):
    """espeak-ng is missing or failed; the message is one actionable line."""


def _espeak_path() -> str:
    path = shutil.which(ESPEAK_BINARY)
    if path is None:
        raise SpeechSynthesisError(
            f"{ESPEAK_BINARY} not found on PATH; install it with `sudo apt-get install espeak-ng`"
        )
    return path


def resample(samples: np.ndarray, rate_in_hz: int, rate_out_hz: int = SAMPLE_RATE_HZ) -> np.ndarray:
    """Band-limited polyphase resampling of a mono signal. (N,) -> (M,) float32."""
    samples = np.asarray(samples, dtype=np.float32)
    if rate_in_hz == rate_out_hz:
        return samples.copy()
    g = math.gcd(rate_in_hz, rate_out_hz)
    out = resample_poly(samples, rate_out_hz // g, rate_in_hz // g)
    return out.astype(np.float32, copy=False)


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """A 16-bit PCM wav as (N,) float32 mono in [-1, 1] (channels averaged) and its rate in Hz."""
    with wave.open(str(path), "rb") as f:
        if f.getsampwidth() != 2:
            raise ValueError(
                f"{path}: only 16-bit PCM wav is supported, got {8 * f.getsampwidth()}"
            )
        n_channels, rate_hz = f.getnchannels(), f.getframerate()
        pcm = np.frombuffer(f.readframes(f.getnframes()), dtype="<i2")
    samples = pcm.astype(np.float32).reshape(-1, n_channels).mean(axis=1) / _INT16_SCALE
    return samples, rate_hz


def write_wav(path: str | Path, samples: np.ndarray, rate_hz: int = SAMPLE_RATE_HZ) -> Path:
    """Write (N,) float mono in [-1, 1] as 16-bit PCM wav (clipped). Returns the path."""
    path = Path(path)
    pcm = np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0)
    pcm16 = np.round(pcm * (_INT16_SCALE - 1)).astype("<i2")
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(rate_hz)
        f.writeframes(pcm16.tobytes())
    return path


# The dataset builder's voice (lab.build_dataset --tts, lab.evaluate --tts), chosen by Whisper's
# word error rate on 300 CMU-MOSI *train* transcripts (benchmarks/tts_asr.py): 160 wpm without
# gaps 21.1 %, 160 wpm with 30 ms gaps 15.1 %, 150 wpm with 30 ms gaps 14.6 %. Without a gap
# espeak-ng runs words together, and Whisper hears "not great" as "heart rate"; slower speech
# without gaps did worse (130 wpm: 32.5 %). The plain default below (160 wpm, no gap) is what the
# demo clip, tests and benchmarks were calibrated on.
DATASET_WORDS_PER_MINUTE = 150
DATASET_WORD_GAP_MS = 30


def synthesize_speech(
    text: str,
    *,
    voice: str = "en-us",
    words_per_minute: int = 160,
    word_gap_ms: int = 0,
) -> np.ndarray:
    """Speak `text` with espeak-ng. Returns (N,) float32 mono at SAMPLE_RATE_HZ.

    Deterministic for a given espeak-ng version, text, voice, rate and word gap.
    """
    if word_gap_ms < 0 or word_gap_ms % 10:
        raise ValueError("word_gap_ms must be a non-negative multiple of 10 (espeak-ng's unit)")
    if not text.strip():
        raise ValueError("synthesize_speech needs non-empty text")
    binary = _espeak_path()
    with tempfile.TemporaryDirectory(prefix="affect-tts-") as tmp:
        # A file, not --stdout: espeak-ng's streamed wav header carries a bogus length.
        wav_path = Path(tmp) / "speech.wav"
        cmd = [
            binary,
            "-v",
            voice,
            "-s",
            str(int(words_per_minute)),
            "-g",
            str(word_gap_ms // 10),  # espeak-ng counts the pause between words in 10 ms units
            "-w",
            str(wav_path),
            "--",
            text,
        ]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0 or not wav_path.exists():
            detail = (result.stderr or "no output").strip().splitlines()
            raise SpeechSynthesisError(
                f"{ESPEAK_BINARY} failed (voice {voice!r}): {detail[0] if detail else 'no output'}"
            )
        samples, rate_hz = read_wav(wav_path)
    log.debug("espeak-ng: %d samples at %d Hz for %r", len(samples), rate_hz, text[:40])
    return resample(samples, rate_hz, SAMPLE_RATE_HZ)


def silence(duration_s: float) -> np.ndarray:
    """(round(duration_s * SAMPLE_RATE_HZ),) float32 zeros, for building test utterances."""
    return np.zeros(int(round(duration_s * SAMPLE_RATE_HZ)), dtype=np.float32)
