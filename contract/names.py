"""The names and numbers the model, the engines, the live pipeline and the dashboard share."""

from __future__ import annotations

# Modalities, in the order of every presence mask, modality weight and feature block.
MODALITIES = ("text", "audio", "visual")

# The live feature layout realtime/ produces and a live checkpoint expects.
EXPRESSION_LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
FACE_GEOMETRY = ("cx", "cy", "width", "height", "confidence")  # box centre/size / frame size
LIVE_TEXT_DIM = 384  # all-MiniLM-L6-v2, the default encoder; a checkpoint may name a wider one
LIVE_AUDIO_DIM = 25  # eGeMAPSv02 low-level descriptors
LIVE_VISUAL_DIM = len(EXPRESSION_LABELS) + len(FACE_GEOMETRY)  # 12

# The step function's recurrent state: nine tensors in this order (msrg.model lays them out,
# engines/base.py gives their shapes). engines/triton_cpu_model.py keeps a copy it cannot import;
# tests/test_contract.py pins it.
STATE_NAMES = (
    "fe_h_text", "fe_h_audio", "fe_h_visual",
    "win_text", "win_audio", "win_visual", "win_g",
    "tlf_h", "rgn_s",
)  # fmt: skip

# Sentiment intensity: the CMU-MOSI/MOSEI scale.
INTENSITY_RANGE = 3.0
INTENSITY_MIN, INTENSITY_MAX = -INTENSITY_RANGE, INTENSITY_RANGE

# Labels: negative < -0.5 <= neutral <= 0.5 < positive. The neutral band is the CMU-MOSI 7-class
# "0" bin (intensities that round to zero), so labels agree with the usual 7-class reading.
NEUTRAL_BAND = 0.5
LABELS = ("negative", "neutral", "positive")
