"""The one contract every inference back-end honours.

Callers hold an `Engine` and never branch on which one it is:

    state = engine.initial_state(batch_size)          # opaque value
    result, state = engine.step(state, StepInputs(...))
    summary = engine.utterance(UtteranceInputs(...))
    engine.close(state)                               # the streams are over (no-op but Triton)

Inputs and results are frozen records of float32 NumPy arrays; no torch or ONNX Runtime type ever
crosses this boundary. States are values: `step` never changes the state passed in, so a caller may
keep the state of the last final step and re-run a provisional tail from it. (The Triton engine
keeps state on the server and honours this only for its recent states: see engines/triton.py.)

This module imports NumPy only, so `import engines` stays light.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np

from msrg.config import MSRGConfig

log = logging.getLogger(__name__)

STEP_INPUT_NAMES = ("text", "audio", "visual", "mask")
STEP_OUTPUT_NAMES = ("intensity", "modality_weights", "salience")
UTTERANCE_INPUT_NAMES = ("text", "audio", "visual", "mask", "valid", "intensity", "salience")
UTTERANCE_OUTPUT_NAMES = ("utterance_intensity", "timestep_intensity", "final_intensity", "gate")


def state_shapes(config: MSRGConfig, batch_size: int) -> tuple[tuple[int, ...], ...]:
    """Shapes of the nine state tensors, in STATE_NAMES order, as MSRG.initial_state lays them."""
    d, w, layers = config.d_model, config.window, config.fe_layers
    return (
        *((batch_size, layers, d) for _ in range(3)),  # FE GRU hidden states
        *((batch_size, w, d) for _ in range(4)),  # FE and AMLP windows
        (batch_size, 2 * d),  # TLF GRU
        (batch_size, d),  # RGN
    )


class EngineError(RuntimeError):
    """Base of the errors raised by engines; messages are one actionable line."""


class EngineUnavailable(EngineError):
    """The requested back-end cannot run here (missing library or device)."""


class ArtefactError(EngineError):
    """An exported artefact is stale or corrupted and may not (or could not) be rebuilt."""


def _f32(x: Any, name: str, ndim: int) -> np.ndarray:
    arr = np.ascontiguousarray(x, dtype=np.float32)
    if arr.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {arr.shape}")
    return arr


@dataclass(frozen=True)
class StepInputs:
    """One time step of B independent streams; converted to contiguous float32 once, here."""

    text: np.ndarray  # (B, D_t)
    audio: np.ndarray  # (B, D_a)
    visual: np.ndarray  # (B, D_v)
    mask: np.ndarray  # (B, 3) presence of text, audio, visual in {0, 1}

    def __post_init__(self) -> None:
        for name in STEP_INPUT_NAMES:
            object.__setattr__(self, name, _f32(getattr(self, name), name, 2))
        batch = {getattr(self, n).shape[0] for n in STEP_INPUT_NAMES}
        if len(batch) != 1:
            raise ValueError(f"StepInputs arrays disagree on the batch size: {sorted(batch)}")

    @property
    def batch_size(self) -> int:
        return int(self.text.shape[0])


@dataclass(frozen=True)
class StepResult:
    intensity: np.ndarray  # (B,) in [-3, 3]
    modality_weights: np.ndarray  # (B, 3) AMLP weights of text, audio, visual
    salience: np.ndarray  # (B,) SIM attention logit, fed back to `utterance`


@dataclass(frozen=True)
class UtteranceInputs:
    """The steps of one utterance per stream; T is free (engines pad or keep the last L)."""

    text: np.ndarray  # (B, T, D_t)
    audio: np.ndarray  # (B, T, D_a)
    visual: np.ndarray  # (B, T, D_v)
    mask: np.ndarray  # (B, T, 3) presence
    valid: np.ndarray  # (B, T) 1 for real steps, 0 for padding
    intensity: np.ndarray  # (B, T) step intensities from `step`
    salience: np.ndarray  # (B, T) step saliences from `step`

    def __post_init__(self) -> None:
        for name in UTTERANCE_INPUT_NAMES:
            ndim = 3 if name in ("text", "audio", "visual", "mask") else 2
            object.__setattr__(self, name, _f32(getattr(self, name), name, ndim))
        shapes = {getattr(self, n).shape[:2] for n in UTTERANCE_INPUT_NAMES}
        if len(shapes) != 1:
            raise ValueError(f"UtteranceInputs arrays disagree on (B, T): {sorted(shapes)}")

    @property
    def batch_size(self) -> int:
        return int(self.valid.shape[0])

    @property
    def n_steps(self) -> int:
        return int(self.valid.shape[1])


@dataclass(frozen=True)
class UtteranceResult:
    utterance_intensity: np.ndarray  # (B,) ULF
    timestep_intensity: np.ndarray  # (B,) SIM's attention summary of the step intensities
    final_intensity: np.ndarray  # (B,) SIM result
    gate: np.ndarray  # (B,) SIM's weight on the ULF intensity


@dataclass(frozen=True)
class EngineState:
    """Opaque recurrent state. `tensors` are whatever the engine keeps (NumPy arrays for ONNX
    Runtime, device tensors for TensorRT); callers only pass the value back."""

    engine: str
    batch_size: int
    tensors: tuple[Any, ...]


class Engine(ABC):
    """The contract every engine honours, back-end or wrapper: what callers may use.

    `initial_state` / `step` / `utterance` / `close` run the model; `name`, `config`,
    `selection_note` (why this engine, for status messages), `truncated_utterances` and
    `model_modalities` (which modalities the model uses, set by a ModalityGate) describe it.
    Back-ends derive from `BackendEngine`, wrappers from `DelegatingEngine`."""

    @property
    @abstractmethod
    def name(self) -> str: ...

    @property
    @abstractmethod
    def config(self) -> MSRGConfig: ...

    @property
    @abstractmethod
    def selection_note(self) -> str: ...

    @property
    @abstractmethod
    def truncated_utterances(self) -> int: ...

    @property
    def model_modalities(self) -> dict[str, str] | None:
        return None

    @abstractmethod
    def initial_state(self, batch_size: int = 1) -> EngineState: ...

    @abstractmethod
    def step(self, state: EngineState, inputs: StepInputs) -> tuple[StepResult, EngineState]:
        """One step of B streams. Returns a new state; `state` is left untouched."""

    @abstractmethod
    def utterance(self, inputs: UtteranceInputs) -> UtteranceResult:
        """ULF + SIM over each stream's utterance (the last L = config.max_utterance_steps
        steps of a longer one, the same on every engine, so results agree)."""

    def close(self, state: EngineState) -> None:
        """The streams of `state` are over. Engines whose state lives in the process do nothing;
        the Triton engine ends the streams' sequences so the server frees their state. Calling
        it is always safe, so callers need not know which engine they hold."""
        return None

    def describe(self) -> str:
        return f"{self.name} ({self.selection_note})"


class BackendEngine(Engine):
    """The template for a back-end: set `name`, implement `_initial`, `_step` and `_utterance`;
    the checks every back-end shares (state ownership, batch sizes, utterance length) are here."""

    name: str = "?"

    def __init__(self, config: MSRGConfig) -> None:
        self._config = config
        # Why this engine was chosen; load_engine fills it in, status messages show it.
        self._selection_note = f"{self.name} requested"
        self._truncated = 0  # utterances longer than L whose oldest steps were dropped

    @property
    def config(self) -> MSRGConfig:
        return self._config

    @property
    def selection_note(self) -> str:
        return self._selection_note

    @selection_note.setter
    def selection_note(self, note: str) -> None:
        self._selection_note = note

    @property
    def truncated_utterances(self) -> int:
        return self._truncated

    def initial_state(self, batch_size: int = 1) -> EngineState:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        return EngineState(self.name, batch_size, self._initial(batch_size))

    def step(self, state: EngineState, inputs: StepInputs) -> tuple[StepResult, EngineState]:
        if not isinstance(state, EngineState) or state.engine != self.name:
            owner = getattr(state, "engine", type(state).__name__)
            raise ValueError(
                f"state belongs to engine {owner!r}, not {self.name!r}; "
                "start from this engine's initial_state()"
            )
        if inputs.batch_size != state.batch_size:
            raise ValueError(
                f"inputs have batch size {inputs.batch_size} but the state has {state.batch_size}"
            )
        result, tensors = self._step(state.tensors, inputs)
        return result, EngineState(self.name, state.batch_size, tensors)

    def utterance(self, inputs: UtteranceInputs) -> UtteranceResult:
        return self._utterance(self._keep_last_steps(inputs))

    # ----------------------------------------------------------------- for subclasses
    @abstractmethod
    def _initial(self, batch_size: int) -> tuple[Any, ...]: ...

    @abstractmethod
    def _step(self, tensors: tuple[Any, ...], inputs: StepInputs) -> tuple[StepResult, tuple]: ...

    @abstractmethod
    def _utterance(self, inputs: UtteranceInputs) -> UtteranceResult: ...

    def _keep_last_steps(self, inputs: UtteranceInputs) -> UtteranceInputs:
        limit = self.config.max_utterance_steps
        if inputs.n_steps <= limit:
            return inputs
        self._truncated += 1
        log.warning(
            "utterance of %d steps is longer than max_utterance_steps=%d: using the last %d "
            "(%d truncated so far)", inputs.n_steps, limit, limit, self._truncated,
        )  # fmt: skip
        return UtteranceInputs(**{n: getattr(inputs, n)[:, -limit:] for n in UTTERANCE_INPUT_NAMES})


class DelegatingEngine(Engine):
    """A wrapper around `inner` (the fallback chain, the modality gate, one stream of the shared
    batched engine): every call and every description goes to `inner` unless the wrapper
    overrides it."""

    def __init__(self, inner: Engine) -> None:
        self.inner = inner

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def config(self) -> MSRGConfig:
        return self.inner.config

    @property
    def selection_note(self) -> str:
        return self.inner.selection_note

    @property
    def truncated_utterances(self) -> int:
        return self.inner.truncated_utterances

    @property
    def model_modalities(self) -> dict[str, str] | None:
        return self.inner.model_modalities

    def initial_state(self, batch_size: int = 1) -> EngineState:
        return self.inner.initial_state(batch_size)

    def step(self, state: EngineState, inputs: StepInputs) -> tuple[StepResult, EngineState]:
        return self.inner.step(state, inputs)

    def utterance(self, inputs: UtteranceInputs) -> UtteranceResult:
        return self.inner.utterance(inputs)

    def close(self, state: EngineState) -> None:
        self.inner.close(state)


def pad_utterance(inputs: UtteranceInputs, length: int) -> dict[str, np.ndarray]:
    """Zero-pad every array along T to `length` for fixed-shape engines. Padding has valid = 0,
    which ULF's pooling and SIM's softmax ignore, so results do not depend on L."""
    pad = length - inputs.n_steps
    arrays = {n: getattr(inputs, n) for n in UTTERANCE_INPUT_NAMES}
    if pad == 0:
        return arrays
    if pad < 0:
        raise ValueError(f"utterance of {inputs.n_steps} steps exceeds L={length}")
    out = {}
    for name, arr in arrays.items():
        widths = [(0, 0)] * arr.ndim
        widths[1] = (0, pad)
        out[name] = np.pad(arr, widths)  # (B, L, ...)
    return out
