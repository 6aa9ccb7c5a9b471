"""The hand-set voice arousal formula that the fitted readout (realtime/voice_readout.py)
replaced, kept to measure the two side by side (lab.evaluate_speech, lab.fit_voice_readout).

arousal = tanh(sum of AROUSAL_WEIGHTS times each descriptor standardised by VOICE_REFERENCE):
loudness (Loudness_sma3, mean over the step), pitch (mean voiced F0 in semitones) and pitch
variability (standard deviation of voiced F0 over the last second of speech); louder, higher and
more varied voices go with higher arousal (Juslin & Laukka 2003, Psychological Bulletin 129(5),
770-814). The reference values were rough centres of conversational speech, never fitted.
"""

from __future__ import annotations

import math

import numpy as np

from realtime.readouts import LOUDNESS_INDEX, PITCH_WINDOW_S, PitchWindow

VOICE_REFERENCE = {"loudness": (0.8, 0.5), "pitch": (30.0, 5.0), "pitch_variability": (2.5, 1.5)}
AROUSAL_WEIGHTS = {"loudness": 0.5, "pitch": 0.3, "pitch_variability": 0.2}


def formula_arousal(values: dict[str, float | None]) -> float:
    """tanh of the weighted standardised descriptors; a missing descriptor adds nothing."""
    total = 0.0
    for name, weight in AROUSAL_WEIGHTS.items():
        x = values.get(name)
        if x is not None:
            mean, sd = VOICE_REFERENCE[name]
            total += weight * (x - mean) / sd
    return math.tanh(total)


def formula_arousal_steps(
    audio: np.ndarray, voiced_f0: np.ndarray, speech: np.ndarray, step_hz: float = 10.0
) -> list[float]:
    """The formula at each speech step of one clip, as the live readout computed it:
    audio (T, 25), voiced_f0 (T, 3) (count, sum, sum of squares), speech (T,) booleans."""
    window = PitchWindow(PITCH_WINDOW_S)
    out = []
    for t in np.nonzero(speech)[0]:
        n, total, squares = voiced_f0[t]
        values = {
            "loudness": max(0.0, float(audio[t, LOUDNESS_INDEX])),
            "pitch": total / n if n else None,
            "pitch_variability": window.add((t + 1) / step_hz, int(n), total, squares),
        }
        out.append(formula_arousal(values))
    return out
