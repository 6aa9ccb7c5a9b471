"""MSRG's step and utterance functions as flat-tensor modules, the form exporters need.

The state travels as nine explicit inputs and nine outputs (names from `STATE_NAMES`, outputs
suffixed `_out`), so ONNX Runtime, TensorRT and later Triton's sequence batcher can carry it.
These wrappers add no computation: they call MSRG.step / MSRG.utterance as written.
"""

from __future__ import annotations

import torch
from torch import nn

from contract.names import STATE_NAMES
from engines.base import (
    STEP_INPUT_NAMES,
    STEP_OUTPUT_NAMES,
    UTTERANCE_INPUT_NAMES,
    UTTERANCE_OUTPUT_NAMES,
)
from msrg.config import MSRGConfig
from msrg.model import MSRG, GruCell, gru_cell

STEP_GRAPH_INPUTS = (*STEP_INPUT_NAMES, *STATE_NAMES)
STEP_GRAPH_OUTPUTS = (*STEP_OUTPUT_NAMES, *(f"{n}_out" for n in STATE_NAMES))


class StepGraph(nn.Module):
    def __init__(self, model: MSRG, cell: GruCell = gru_cell) -> None:
        """cell: how MSRG.step computes its GRU cells (the ONNX export fuses them)."""
        super().__init__()
        self.model = model
        self.cell = cell

    def forward(self, *flat: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """flat = text (B, D_t), audio (B, D_a), visual (B, D_v), mask (B, 3), *state (9 tensors)
        -> intensity (B,), modality_weights (B, 3), salience (B,), *new state (9 tensors)."""
        text, audio, visual, mask = flat[:4]
        out, state = self.model.step(tuple(flat[4:]), text, audio, visual, mask, self.cell)
        return (out.intensity, out.modality_weights, out.salience, *state)


class UtteranceGraph(nn.Module):
    def __init__(self, model: MSRG) -> None:
        super().__init__()
        self.model = model

    def forward(self, *flat: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """flat = text/audio/visual (B, L, D_m), mask (B, L, 3), valid/intensity/salience (B, L)
        -> utterance_intensity, timestep_intensity, final_intensity, gate, each (B,)."""
        out = self.model.utterance(*flat)
        return (out.utterance_intensity, out.timestep_intensity, out.final_intensity, out.gate)


def step_example(
    model: MSRG, batch_size: int, device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, ...]:
    """Example inputs for tracing: random features, mixed presence, zero state."""
    c: MSRGConfig = model.config
    gen = torch.Generator().manual_seed(0)
    feats = [torch.randn(batch_size, dim, generator=gen) for dim in c.dims.values()]
    mask = (torch.rand(batch_size, 3, generator=gen) > 0.3).float()
    state = [t.cpu() for t in model.initial_state(batch_size)]
    return tuple(t.to(device) for t in (*feats, mask, *state))


def utterance_example(
    model: MSRG, batch_size: int, device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, ...]:
    c: MSRGConfig = model.config
    length = c.max_utterance_steps
    gen = torch.Generator().manual_seed(0)
    feats = [torch.randn(batch_size, length, dim, generator=gen) for dim in c.dims.values()]
    mask = (torch.rand(batch_size, length, 3, generator=gen) > 0.3).float()
    valid = torch.ones(batch_size, length)
    scores = [torch.randn(batch_size, length, generator=gen) for _ in range(2)]
    return tuple(t.to(device) for t in (*feats, mask, valid, *scores))


def shapes(example: tuple[torch.Tensor, ...], names: tuple[str, ...], batch: str | int) -> dict:
    """Shape record for manifests; the batch axis is written as `batch` (a name or a size)."""
    return {n: [batch, *t.shape[1:]] for n, t in zip(names, example)}


assert len(UTTERANCE_INPUT_NAMES) == 7 and len(UTTERANCE_OUTPUT_NAMES) == 4
