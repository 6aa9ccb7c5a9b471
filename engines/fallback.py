"""An engine that falls back, once, to the next back-end when its own fails at run time.

A TensorRT engine can die mid-session (a driver reset, an out-of-memory on a shared GPU), a Triton
server can go away, ONNX Runtime can raise on an input it did not expect. Ending the session for
that would lose the rest of a recording, so the first failure of `step` or `utterance` loads the
next engine in FALLBACK_ORDER and carries on with it, visibly: a log line, a counted error, and a
new engine name and note in every status message that follows. A failure of the fallback engine
is not caught: a second fault means something other than the back-end is wrong.

The recurrent state cannot move between back-ends (each keeps its own tensor type, Triton keeps
it on a server), so the fallback restarts from its initial state: the model forgets at most its
context window (about a second) of history, which the stream rebuilds as it goes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from engines.base import (
    DelegatingEngine,
    Engine,
    EngineState,
    StepInputs,
    StepResult,
    UtteranceInputs,
    UtteranceResult,
)

log = logging.getLogger(__name__)

# Which back-end takes over when one fails; eager PyTorch is the last resort and has none.
FALLBACK_ORDER = {"tensorrt": "onnx", "triton": "onnx", "onnx": "eager"}


def fallback_kind(engine_name: str) -> str | None:
    """The engine kind to load when `engine_name` fails (names like tensorrt-fp16 included)."""
    return FALLBACK_ORDER.get(engine_name.split("-")[0])


class FallbackEngine(DelegatingEngine):
    """Wraps `primary`; `load_next()` builds the replacement when (and only when) it is needed.

    `on_switch(message)` is told once, with one line saying what failed and what took over, so
    the session can count it as an error. States are wrapped so that a state of the failed engine,
    still held by a caller (the step runner keeps the last final one), is recognised and replaced
    by the new engine's initial state instead of being passed to an engine it does not belong to.
    """

    def __init__(
        self, primary: Engine, load_next: Callable[[], Engine] | None,
        on_switch: Callable[[str], None] | None = None,
    ) -> None:  # fmt: skip
        super().__init__(primary)  # `inner` is the engine doing the work now (status shows it)
        self._load_next = load_next
        self.on_switch = on_switch
        self.switched_from: str | None = None  # the failed engine's name, once it has failed
        self._note: str | None = None  # why the active engine took over, once one has

    @property
    def active(self) -> Engine:
        return self.inner

    @property
    def selection_note(self) -> str:
        return self._note or self.inner.selection_note

    def initial_state(self, batch_size: int = 1) -> EngineState:
        return EngineState("fallback", batch_size, (self.active.initial_state(batch_size),))

    def step(self, state: EngineState, inputs: StepInputs) -> tuple[StepResult, EngineState]:
        inner = self._own(state)
        try:
            result, new_inner = self.active.step(inner, inputs)
        except Exception as exc:
            if not self._switch(exc):
                raise
            result, new_inner = self.active.step(self.active.initial_state(state.batch_size), inputs)
        return result, EngineState("fallback", state.batch_size, (new_inner,))

    def utterance(self, inputs: UtteranceInputs) -> UtteranceResult:
        try:
            return self.active.utterance(inputs)
        except Exception as exc:
            if not self._switch(exc):
                raise
            return self.active.utterance(inputs)

    def close(self, state: EngineState) -> None:
        inner = state.tensors[0] if state.tensors else None
        if isinstance(inner, EngineState) and inner.engine == self.active.name:
            self.active.close(inner)

    def _own(self, state: EngineState) -> EngineState:
        """The active engine's state inside `state`; its initial state if `state` predates a
        switch (it belongs to the failed engine)."""
        inner = state.tensors[0] if state.tensors else None
        if isinstance(inner, EngineState) and inner.engine == self.active.name:
            return inner
        return self.active.initial_state(state.batch_size)

    def _switch(self, exc: Exception) -> bool:
        """Replace the active engine after its failure; False when there is nothing to switch to
        (no fallback, or the fallback itself failed)."""
        if self.switched_from is not None or self._load_next is None:
            return False
        failed = self.active.name
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        log.error("engine %s failed at run time (%s); loading the fallback engine", failed, first)
        try:
            replacement = self._load_next()
        except Exception as load_exc:
            log.error("the fallback engine could not be loaded either: %s", load_exc)
            return False
        self.switched_from = failed
        self.inner = replacement
        note = f"fell back from {failed} after it failed: {first}"[:300]
        self._note = note
        log.warning("engine: now %s (%s); recurrent state restarted", replacement.name, note)
        if self.on_switch is not None:
            self.on_switch(f"engine {failed} failed ({first}); switched to {replacement.name}")
        return True

