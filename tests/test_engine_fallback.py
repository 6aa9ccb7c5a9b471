"""FallbackEngine: a back-end that fails at run time is replaced once by the next one, visibly.
Real eager engines on a random-init checkpoint; the only fake is the failure itself."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from engines import load_engine
from engines.base import BackendEngine, Engine, EngineState, StepInputs, StepResult, UtteranceInputs
from engines.fallback import FallbackEngine, fallback_kind
from msrg.checkpoint import save_checkpoint
from msrg.model import MSRG


class FailingEngine(BackendEngine):
    """A real engine that raises after `ok_steps` steps, as a TensorRT context may mid-session."""

    def __init__(self, inner: Engine, ok_steps: int, name: str = "onnx") -> None:
        self.name = name
        super().__init__(inner.config)
        self.inner, self.ok_steps, self.steps = inner, ok_steps, 0

    def _initial(self, batch_size: int) -> tuple:
        return self.inner.initial_state(batch_size).tensors

    def _step(self, tensors: tuple, inputs: StepInputs) -> tuple[StepResult, tuple]:
        self.steps += 1
        if self.steps > self.ok_steps:
            raise RuntimeError("simulated failure: CUDA error: an illegal memory access\nmore")
        result, state = self.inner.step(EngineState(self.inner.name, 1, tensors), inputs)
        return result, state.tensors

    def _utterance(self, inputs: UtteranceInputs):
        return self.inner.utterance(inputs)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return save_checkpoint(MSRG().eval(), tmp_path_factory.mktemp("fb") / "random.pt")


def _inputs(engine: Engine, k: int) -> StepInputs:
    rng = np.random.default_rng(k)
    c = engine.config
    return StepInputs(rng.standard_normal((1, c.text_dim)), rng.standard_normal((1, c.audio_dim)),
                      rng.standard_normal((1, c.visual_dim)), np.ones((1, 3)))  # fmt: skip


def test_fallback_order() -> None:
    assert fallback_kind("tensorrt-fp16") == "onnx"
    assert fallback_kind("triton") == "onnx"
    assert fallback_kind("onnx") == "eager"
    assert fallback_kind("eager") is None


def test_switches_once_visibly_and_keeps_stepping(checkpoint, caplog) -> None:
    switches: list[str] = []
    engine = FallbackEngine(FailingEngine(load_engine("eager", checkpoint), ok_steps=3),
                            lambda: load_engine("eager", checkpoint), on_switch=switches.append)
    state = engine.initial_state(1)
    held = None
    for k in range(8):
        if k == 2:
            held = state  # a state of the failing engine, kept as the step runner keeps one
        result, state = engine.step(state, _inputs(engine, k))
        assert np.isfinite(result.intensity).all()
    assert engine.name == "eager" and engine.switched_from == "onnx"
    assert len(switches) == 1 and "onnx failed" in switches[0] and "\n" not in switches[0]
    assert engine.selection_note.startswith("fell back from onnx")
    assert any("failed at run time" in r.getMessage() for r in caplog.records)
    # A state from before the switch restarts from the new engine's initial state.
    fresh, _ = engine.step(engine.initial_state(1), _inputs(engine, 9))
    again, _ = engine.step(held, _inputs(engine, 9))
    np.testing.assert_allclose(again.intensity, fresh.intensity, rtol=1e-6)


def test_without_a_fallback_the_error_propagates(checkpoint) -> None:
    engine = FallbackEngine(FailingEngine(load_engine("eager", checkpoint), 0, "eager"), None)
    with pytest.raises(RuntimeError, match="simulated failure"):
        engine.step(engine.initial_state(1), _inputs(engine, 0))


def test_a_failing_fallback_is_not_replaced_again(checkpoint) -> None:
    engine = FallbackEngine(
        FailingEngine(load_engine("eager", checkpoint), 0, "tensorrt-fp32"),
        lambda: FailingEngine(load_engine("eager", checkpoint), 1, "onnx"),
    )
    state = engine.initial_state(1)
    _, state = engine.step(state, _inputs(engine, 0))  # tensorrt fails, onnx takes the step
    with pytest.raises(RuntimeError, match="simulated failure"):
        engine.step(state, _inputs(engine, 1))  # onnx fails too: once means once
    assert engine.name == "onnx"
