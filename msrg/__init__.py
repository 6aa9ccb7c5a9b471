"""MSRG: multimodal sentiment with a residual gating network and emotion-intensity attention."""

from msrg.config import MSRGConfig
from msrg.model import MSRG, StepOutput, SequenceOutput, UtteranceOutput

__all__ = ["MSRG", "MSRGConfig", "SequenceOutput", "StepOutput", "UtteranceOutput"]
