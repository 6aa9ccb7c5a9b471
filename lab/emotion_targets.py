"""A valence and an arousal for each acted emotion category, on the model's scale.

Acted corpora (RAVDESS, EmoDB) label a clip with an emotion category, not with a sentiment score.
To train and check the model on them, each category gets a point in the circumplex from a
published norm, and the clip's target is that point scaled to the model's [-3, 3]:

    valence target = 3 x pleasure x INTENSITY_SCALE[intensity]
    arousal        = arousal of the norm (-1..1), unscaled (the voice arousal readout's units)

Sources of NORMS (scale -1..1):
- Russell & Mehrabian (1977), "Evidence for a three-factor theory of emotions", Journal of
  Research in Personality 11(3), 273-294: mean pleasure and arousal ratings of emotion words.
  happy, sad, angry, fearful, disgusted, surprised and bored are the words rated there; the face
  readout (contract/readout_messages.py, CIRCUMPLEX) uses the same ratings.
- calm: Russell & Mehrabian's list has no "calm". Russell (1980), "A circumplex model of affect",
  Journal of Personality and Social Psychology 39(6), 1161-1178, places relaxation at 315 degrees
  of the circumplex (pleasant, unaroused): the unit point (cos 315, sin 315) = (0.71, -0.71).
- neutral: the origin, by definition.

INTENSITY_SCALE is ours, not a norm: RAVDESS's "strong" takes the norm's point as it is, its
"normal" two thirds of it; a corpus without intensity levels (EmoDB, empty intensity) counts as
strong, as its actors portray full emotions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

INTENSITY_RANGE = 3.0  # the model's scale: sentiment in [-3, 3]
_CALM = round(math.cos(math.radians(315)), 2), round(math.sin(math.radians(315)), 2)

# emotion -> (pleasure, arousal), scale -1..1
NORMS: dict[str, tuple[float, float]] = {
    "neutral": (0.0, 0.0),
    "calm": _CALM,
    "happy": (0.81, 0.51),
    "sad": (-0.63, -0.27),
    "angry": (-0.51, 0.59),
    "fearful": (-0.64, 0.60),
    "disgust": (-0.60, 0.35),
    "surprised": (0.40, 0.67),
    "boredom": (-0.65, -0.62),
}
EMOTIONS = tuple(NORMS)
INTENSITY_SCALE = {"strong": 1.0, "normal": 2.0 / 3.0, "": 1.0}
INTENSITIES = ("normal", "strong", "")

# The two sides of the voice arousal check: categories the norm rates clearly aroused (>= 0.3)
# against those it rates at or below the middle (<= 0). No category falls between.
HIGH_AROUSAL = tuple(e for e, (_, a) in NORMS.items() if a >= 0.3)
LOW_AROUSAL = tuple(e for e, (_, a) in NORMS.items() if a <= 0.0)


@dataclass(frozen=True)
class Target:
    valence: float  # on the model's [-3, 3]
    arousal: float  # -1..1, the norm's
    arousal_side: str | None  # "high", "low" (HIGH_AROUSAL / LOW_AROUSAL) or None


def target(emotion: str, intensity: str = "") -> Target:
    """The clip's target; ValueError naming the choices for an unknown emotion or intensity."""
    if emotion not in NORMS:
        raise ValueError(f"emotion {emotion!r} is not one of {', '.join(EMOTIONS)}")
    if intensity not in INTENSITY_SCALE:
        raise ValueError(f"intensity {intensity!r} is not one of normal, strong or empty")
    pleasure, arousal = NORMS[emotion]
    valence = round(INTENSITY_RANGE * pleasure * INTENSITY_SCALE[intensity], 4)
    side = "high" if emotion in HIGH_AROUSAL else "low" if emotion in LOW_AROUSAL else None
    return Target(valence, arousal, side)
