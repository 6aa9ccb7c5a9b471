"""An engine that never shows the model a modality it did not learn from.

    gate = ModalityGate(engine, usage)   # usage: LoadedCheckpoint.modality_usage
    result, state = gate.step(state, inputs)   # inputs of untrained modalities: absent, zeros

A checkpoint trained without faces has a face branch at its initial weights; fed live faces,
the AMLP fusion gives that branch weight and the intensity moves with noise. The gate sets the
presence mask of every modality the checkpoint's record marks untrained (msrg/modalities.py) to
0 and its features to 0, in `step` and in `utterance`, before the wrapped engine (any back-end,
a fallback wrapper, or a shared batched engine behind it) sees them. So intensities, saliences,
SIM results and AMLP weights are over the modalities the model uses, and equal whatever the
untrained sensors delivered. What the sensors saw stays with the caller (a step's `present`).

When every modality is used the gate passes inputs through untouched. States are the wrapped
engine's own, unchanged. NumPy only.
"""

from __future__ import annotations

import numpy as np

from engines.base import (
    DelegatingEngine,
    Engine,
    EngineState,
    StepInputs,
    StepResult,
    UtteranceInputs,
    UtteranceResult,
)
from msrg.config import MODALITIES
from msrg.modalities import use_mask


class ModalityGate(DelegatingEngine):
    """Wraps `inner`; `usage` maps each modality to "used" or "not used: <why>"."""

    def __init__(self, inner: Engine, usage: dict[str, str]) -> None:
        super().__init__(inner)
        self._usage = dict(usage)
        self._keep = use_mask(usage)  # (3,) 1 used / 0 masked
        self._masked = [i for i, m in enumerate(MODALITIES) if not self._keep[i]]

    @property
    def model_modalities(self) -> dict[str, str]:
        """Each modality: "used" or "not used: <why>" (status messages carry it)."""
        return self._usage

    def step(self, state: EngineState, inputs: StepInputs) -> tuple[StepResult, EngineState]:
        if self._masked:
            inputs = StepInputs(*self._gated(inputs.text, inputs.audio, inputs.visual, inputs.mask))
        return self.inner.step(state, inputs)

    def utterance(self, inputs: UtteranceInputs) -> UtteranceResult:
        if self._masked:
            text, audio, visual, mask = self._gated(inputs.text, inputs.audio, inputs.visual,
                                                    inputs.mask)  # fmt: skip
            inputs = UtteranceInputs(text, audio, visual, mask, inputs.valid, inputs.intensity,
                                     inputs.salience)  # fmt: skip
        return self.inner.utterance(inputs)

    def _gated(self, *arrays: np.ndarray) -> tuple[np.ndarray, ...]:
        """(text, audio, visual, mask) with the masked modalities' features and presence at 0;
        the caller's arrays are not written."""
        features, mask = list(arrays[:3]), arrays[3] * self._keep  # a new mask array
        for i in self._masked:
            features[i] = np.zeros_like(features[i])
        return (*features, mask)

