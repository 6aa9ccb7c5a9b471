"""One engine shared by several streams: their concurrent steps run as one batched step.

    shared = SharedEngine(load_engine("onnx", ckpt), max_wait_s=0.002)
    engine_a, engine_b = shared.handle("a"), shared.handle("b")   # each honours the Engine contract
    ... each stream's pipeline gets its handle instead of an engine ...
    shared.shutdown()                                             # joins the batcher thread

Why: one process serving N streams would otherwise make N batch-1 engine calls per time step.
At batch 1 the MSRG step is ~150 small kernels whose fixed cost dominates, so one call at batch N
costs much less than N calls at batch 1 (measured on the 2-core dev machine, one thread: ONNX
0.16 ms at B=1, 0.28 ms at B=4; eager 0.78 and 1.26 ms); the engines were built for any batch
size (ONNX's batch axis is dynamic, eager PyTorch does not care). The engine is a small part of
a stream's CPU (the face and voice extractors and Whisper dominate), so this saves engine calls
and keeps one copy of the model, not the day: see benchmarks/multistream.py for the whole.

How: a handle's `step` hands its (state, inputs) to the batcher (engines/batcher.py), which
gathers the active streams' requests for at most `max_wait_s`; this module concatenates the
states and inputs along the batch axis, runs one `step` of the wrapped engine, and splits the
results and new states back. A stream that stops submitting therefore costs the others at most
`max_wait_s` a step, never a stall. When a stream is the only active one, its step runs at once
on its own thread: there is nothing to batch with, so it pays no hand-off.

States stay values: concatenation and splitting copy or slice, never write, so a caller may keep
the state of its last final step and re-run a provisional tail from it, as with any engine.
Requests whose states do not fit together (another engine's state after a fallback switch, other
tensor types or shapes) run as separate batches. `utterance` calls are rare (one per speech
pause) and run on the caller's thread, under the same lock as the batched steps, so the wrapped
engine is only ever used by one thread at a time.

Supported: engines whose state tensors are NumPy arrays (ONNX Runtime) or torch tensors (eager),
with the batch on axis 0, also behind realtime's FallbackEngine (nested states). TensorRT
(compiled for one batch size) and Triton (state on the server; the server batches sequences
itself) are refused with one line.

This module imports NumPy only; torch tensors are recognised only once torch is imported.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import Any

import numpy as np

from engines.base import (
    STEP_INPUT_NAMES,
    DelegatingEngine,
    Engine,
    EngineError,
    EngineState,
    StepInputs,
    StepResult,
    UtteranceInputs,
    UtteranceResult,
)
from engines.batcher import Batcher, Request, fail_unfinished

log = logging.getLogger(__name__)

DEFAULT_MAX_WAIT_S = 0.002  # well under the 100 ms step hop; a few engine calls' worth

# Back-ends whose state cannot be concatenated here, and why (the first word of engine.name).
_REFUSED = {
    "tensorrt": "its engine is compiled for one batch size and keeps state on the GPU",
    "triton": "its state lives on the server, which batches the streams' sequences itself; "
    "give each stream its own triton engine",
}


class SharedEngineError(EngineError):
    """The shared engine cannot serve this engine or request; one line."""


def check_shareable(engine: Engine) -> None:
    """Raise SharedEngineError when `engine`'s states cannot be batched across streams."""
    kind = engine.name.split("-")[0]
    if kind in _REFUSED:
        raise SharedEngineError(
            f"the {engine.name} engine cannot be shared by several streams ({_REFUSED[kind]}); "
            "use --engine onnx or eager"
        )


# --------------------------------------------------------------------------- state plumbing
def _torch() -> Any:
    """torch if some engine has imported it (only then can a state hold torch tensors)."""
    return sys.modules.get("torch")


def _signature(value: Any) -> Any:
    """What must agree for values to be concatenated: type, dtype, device, non-batch shape."""
    if isinstance(value, EngineState):
        return ("state", value.engine, tuple(_signature(t) for t in value.tensors))
    if isinstance(value, np.ndarray):
        return ("numpy", value.dtype.str, value.shape[1:])
    torch = _torch()
    if torch is not None and isinstance(value, torch.Tensor):
        return ("torch", str(value.dtype), str(value.device), tuple(value.shape[1:]))
    return ("opaque", id(value))  # never equal to another request's: runs alone


def _concat(parts: list[Any]) -> Any:
    """Join values of equal signature along the batch axis (axis 0, or EngineState.batch_size)."""
    first = parts[0]
    if isinstance(first, EngineState):
        tensors = tuple(_concat([p.tensors[i] for p in parts]) for i in range(len(first.tensors)))
        return EngineState(first.engine, sum(p.batch_size for p in parts), tensors)
    if isinstance(first, np.ndarray):
        return np.concatenate(parts, axis=0)
    torch = _torch()
    if torch is not None and isinstance(first, torch.Tensor):
        with torch.inference_mode():  # eager states are inference tensors
            return torch.cat(parts, dim=0)
    raise SharedEngineError(f"cannot batch a state part of type {type(first).__name__}")


def _split(value: Any, sizes: list[int]) -> list[Any]:
    """The inverse of _concat: one value per part, batch sizes `sizes`. Slices are views of the
    batch output, which no engine writes to again, so each part is still a value."""
    if isinstance(value, EngineState):
        columns = [_split(t, sizes) for t in value.tensors]  # per tensor: one slice per part
        return [
            EngineState(value.engine, size, tuple(col[k] for col in columns))
            for k, size in enumerate(sizes)
        ]
    bounds = np.cumsum([0, *sizes])
    return [value[int(a) : int(b)] for a, b in zip(bounds[:-1], bounds[1:])]


# --------------------------------------------------------------------------- the shared engine
def _key(request: Request) -> Any:
    """What must agree for requests to run as one batch: state signature and input shapes."""
    state, inputs = request.payload
    shapes = tuple(getattr(inputs, n).shape[1:] for n in STEP_INPUT_NAMES)
    return (_signature(state), shapes)


class SharedEngine:
    """Owns `engine` and the batcher (engines/batcher.py); hands out one `StreamEngine` per
    stream."""

    def __init__(self, engine: Engine, max_wait_s: float = DEFAULT_MAX_WAIT_S) -> None:
        check_shareable(engine)
        self.engine = engine
        self.handles = 0  # handed out so far (the status note says how many share it)
        self._engine_lock = threading.Lock()  # one thread in the wrapped engine at a time
        self._batcher = Batcher(self._run, max_wait_s, "engine-batcher", SharedEngineError)

    @property
    def max_wait_s(self) -> float:
        return self._batcher.max_wait_s

    def handle(self, label: str | None = None) -> StreamEngine:
        """A new stream's engine. It counts as active (worth waiting for) until it is closed."""
        h = StreamEngine(self, label or f"stream-{self.handles}")
        self._batcher.join(h)
        self.handles += 1
        return h

    def stats(self) -> dict[str, Any]:
        return self._batcher.stats()

    def shutdown(self, timeout_s: float = 2.0) -> bool:
        """Run what is already submitted, refuse anything new, join the thread. True if joined."""
        return self._batcher.shutdown(timeout_s)

    def __enter__(self) -> SharedEngine:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.shutdown()

    @property
    def running(self) -> bool:
        return self._batcher.running

    # ------------------------------------------------------------------ for the handles
    def _step(self, handle: StreamEngine, state: EngineState, inputs: StepInputs) -> Any:
        return self._batcher.call(Request(handle, (state, inputs)))

    def _deactivate(self, handle: StreamEngine) -> None:
        self._batcher.leave(handle)

    def _utterance(self, inputs: UtteranceInputs) -> UtteranceResult:
        with self._engine_lock:
            return self.engine.utterance(inputs)

    def _close_state(self, state: EngineState) -> None:
        with self._engine_lock:
            self.engine.close(state)

    # ------------------------------------------------------------------ batches
    def _run(self, batch: list[Request]) -> None:
        groups: dict[Any, list[Request]] = {}
        for request in batch:
            try:
                key = _key(request)
            except Exception as exc:  # never let one odd request kill the thread
                request.fail(exc)
                continue
            groups.setdefault(key, []).append(request)
        for group in groups.values():
            try:
                self._run_group(group)
            except BaseException as exc:  # a bug here must reach the callers, not hang them
                fail_unfinished(group, exc)

    def _run_group(self, group: list[Request]) -> None:
        started = time.monotonic()
        if len(group) == 1:
            request = group[0]
            try:
                with self._engine_lock:
                    outcome = self.engine.step(*request.payload)
            except Exception as exc:
                request.fail(exc)
                return
            self._batcher.account(group, started)
            request.finish(outcome)
            return
        states = [r.payload[0] for r in group]
        sizes = [s.batch_size for s in states]
        inputs = StepInputs(
            *(np.concatenate([getattr(r.payload[1], n) for r in group]) for n in STEP_INPUT_NAMES)
        )
        try:
            with self._engine_lock:
                result, new_state = self.engine.step(_concat(states), inputs)
        except Exception:
            # One stream's bad state or input must not fail the others: run each alone, so
            # the error reaches only the stream that caused it.
            for request in group:
                self._run_group([request])
            return
        self._batcher.account(group, started)
        new_states = _split(new_state, sizes)
        columns = [_split(getattr(result, n), sizes) for n in ("intensity", "modality_weights",
                                                               "salience")]  # fmt: skip
        for k, request in enumerate(group):
            request.finish((StepResult(*(col[k] for col in columns)), new_states[k]))


class StreamEngine(DelegatingEngine):
    """One stream's view of a SharedEngine; honours the Engine contract, so a pipeline takes it
    where it would take an engine. `close(state)` ends the stream: the batcher stops waiting for
    it (a later step makes it active again)."""

    def __init__(self, shared: SharedEngine, label: str) -> None:
        super().__init__(shared.engine)  # name, config and modalities are the shared engine's
        self._shared = shared
        self.label = label

    @property
    def selection_note(self) -> str:
        return (f"{self.inner.selection_note}; one engine batched across "
                f"{self._shared.handles} streams")  # fmt: skip

    def step(self, state: EngineState, inputs: StepInputs) -> tuple[StepResult, EngineState]:
        if not isinstance(state, EngineState):
            raise ValueError(f"state must be an EngineState from initial_state(), got "
                             f"{type(state).__name__}")  # fmt: skip
        if inputs.batch_size != state.batch_size:
            raise ValueError(
                f"inputs have batch size {inputs.batch_size} but the state has {state.batch_size}"
            )
        return self._shared._step(self, state, inputs)

    def utterance(self, inputs: UtteranceInputs) -> UtteranceResult:
        return self._shared._utterance(inputs)

    def close(self, state: EngineState) -> None:
        try:
            self._shared._close_state(state)
        finally:
            self._shared._deactivate(self)
