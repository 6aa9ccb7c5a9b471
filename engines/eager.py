"""The eager PyTorch engine: the MSRG module itself, the reference every other engine matches."""

from __future__ import annotations

import numpy as np
import torch

from engines.base import (
    BackendEngine,
    StepInputs,
    StepResult,
    UtteranceInputs,
    UtteranceResult,
)
from msrg.model import MSRG


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float32).numpy()


class EagerEngine(BackendEngine):
    name = "eager"

    def __init__(self, model: MSRG, *, device: str = "cpu", threads: int | None = None) -> None:
        super().__init__(model.config)
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        if device != "cpu":
            self.name = f"eager-{self.device.type}"
        if threads is not None:
            # Process-wide in PyTorch; the only knob there is.
            torch.set_num_threads(threads)

    def _tensor(self, x: np.ndarray) -> torch.Tensor:
        # from_numpy shares memory; safe because the model never writes to its inputs.
        return torch.from_numpy(x).to(self.device, non_blocking=True)

    @torch.inference_mode()
    def _initial(self, batch_size: int) -> tuple[torch.Tensor, ...]:
        return tuple(self.model.initial_state(batch_size))

    @torch.inference_mode()
    def _step(
        self, tensors: tuple[torch.Tensor, ...], inputs: StepInputs
    ) -> tuple[StepResult, tuple[torch.Tensor, ...]]:
        # MSRG.step builds its new state from fresh tensors (cat/slice/new cells), so the
        # tensors of the previous state are never written to.
        out, new_state = self.model.step(
            tensors, *(self._tensor(x) for x in (inputs.text, inputs.audio, inputs.visual)),
            self._tensor(inputs.mask),
        )  # fmt: skip
        result = StepResult(
            intensity=_np(out.intensity),  # (B,)
            modality_weights=_np(out.modality_weights),  # (B, 3)
            salience=_np(out.salience),  # (B,)
        )
        return result, tuple(new_state)

    @torch.inference_mode()
    def _utterance(self, inputs: UtteranceInputs) -> UtteranceResult:
        arrays = [
            inputs.text, inputs.audio, inputs.visual, inputs.mask,
            inputs.valid, inputs.intensity, inputs.salience,
        ]  # fmt: skip
        if inputs.n_steps == 0:  # one all-invalid step: ULF sees nothing, SIM falls back to ULF
            arrays = [np.zeros((a.shape[0], 1, *a.shape[2:]), np.float32) for a in arrays]
        out = self.model.utterance(*(self._tensor(a) for a in arrays))
        return UtteranceResult(
            utterance_intensity=_np(out.utterance_intensity),
            timestep_intensity=_np(out.timestep_intensity),
            final_intensity=_np(out.final_intensity),
            gate=_np(out.gate),
        )
