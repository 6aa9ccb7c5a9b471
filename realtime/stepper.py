"""The one owner of the model's recurrent state in a live session.

New steps run from the newest state. When late words change provisional steps, the whole
provisional tail is re-run from the state saved after the last *final* step, so the cost is the
tail only, never the history. Because engine states are immutable values, "saving" a state is
keeping a reference to it.

What a step shows (`StepOutcome.shown`, the published intensity): the model's estimate of the
current utterance's sentiment from everything perceived so far. On a step without speech (no
words placed, no voice activity) it holds the last speech step's value (0, neutral, before any
speech): silence carries no evidence, and the model's outputs there were never trained to mean
anything. SIM's utterance result uses the model's own intensities (`intensity`), as in training.

A stage (realtime/stage.py): push(StepBatch) runs the batch's new steps, re-runs the tail its
revised steps start, marks its final steps and gives every step version not yet published;
flush owes nothing (each push gives all it can); reset starts a new stream from the engine's
initial state; close lets the engine free what it holds for the stream. The engine itself is
the session's, not the runner's, and stays open.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, replace

import numpy as np

from engines.base import Engine, EngineState, StepInputs, UtteranceInputs, UtteranceResult
from realtime.stage import Stage
from realtime.types import StepBatch, StepFeatures


@dataclass(frozen=True)
class StepOutcome:
    features: StepFeatures
    intensity: float
    modality_weights: tuple[float, float, float]
    salience: float
    revision: int  # how many times this step was published before this version
    final: bool
    shown: float = 0.0  # the published intensity: `intensity` on speech steps, else held


def is_speech(features: StepFeatures) -> bool:
    """Words placed or voice activity in the step (presence order: text, audio, visual)."""
    return bool(features.present[0]) or bool(features.present[1])


def held(features: StepFeatures, intensity: float, previous: float) -> float:
    """The intensity to show: the model's on a speech step, else the previous shown value."""
    return intensity if is_speech(features) else previous


@dataclass
class _TailEntry:
    features: StepFeatures
    outcome: StepOutcome | None  # latest computed result (None before the first run)
    state_after: EngineState
    published: int  # number of publications so far (next revision number)
    dirty: bool  # computed but not yet published


class StepRunner(Stage[StepBatch]):
    def __init__(self, engine: Engine, history_steps: int | None = None) -> None:
        self.engine = engine
        # Final steps kept for utterance results (a little more than the longest utterance).
        self._history_steps = history_steps or engine.config.max_utterance_steps + 200
        self.steps_run = 0  # engine calls, including re-runs (the cost of revisions)
        self._closed = False
        self.reset()

    def reset(self) -> None:
        self._final_state = self.engine.initial_state(1)
        self._tail: list[_TailEntry] = []
        self._history: collections.deque[StepOutcome] = collections.deque(
            maxlen=self._history_steps
        )
        self._final_shown = 0.0  # shown value of the last final step (neutral before speech)

    def push(self, batch: StepBatch) -> list[StepOutcome]:
        """New steps run from the newest state, revised ones re-run from the last final state,
        then every step with a version not yet published, oldest first."""
        self._add(batch.new)
        self._revise(batch.revised)
        self._finalise(batch.final)
        return self._take_publishable()

    def flush(self) -> list[StepOutcome]:
        """Nothing is held back: a step waits for its words, which come as a pushed batch."""
        return []

    @property
    def _newest_state(self) -> EngineState:
        return self._tail[-1].state_after if self._tail else self._final_state

    def _run(
        self, features: StepFeatures, state: EngineState, previous_shown: float
    ) -> tuple[StepOutcome, EngineState]:
        mask = np.asarray(features.present, np.float32)[None]
        inputs = StepInputs(features.text[None], features.audio[None], features.visual[None], mask)
        result, new_state = self.engine.step(state, inputs)
        self.steps_run += 1
        weights = tuple(float(w) for w in result.modality_weights[0])
        intensity = float(result.intensity[0])
        outcome = StepOutcome(
            features=features, intensity=intensity,
            modality_weights=weights,  # type: ignore[arg-type]
            salience=float(result.salience[0]), revision=0, final=False,
            shown=held(features, intensity, previous_shown),
        )  # fmt: skip
        return outcome, new_state

    def _add(self, steps: tuple[StepFeatures, ...]) -> None:
        """New steps, run from the newest state."""
        for features in steps:
            previous = self._tail[-1].outcome.shown if self._tail else self._final_shown
            outcome, state = self._run(features, self._newest_state, previous)  # type: ignore[union-attr]
            self._tail.append(_TailEntry(features, outcome, state, published=0, dirty=True))

    def _revise(self, changed: tuple[StepFeatures, ...]) -> None:
        """Provisional steps whose features changed: re-run the tail from the last final state."""
        if not changed:
            return
        by_seq = {f.seq: f for f in changed}
        start = next((i for i, e in enumerate(self._tail) if e.features.seq in by_seq), None)
        if start is None:
            return
        state = self._tail[start - 1].state_after if start > 0 else self._final_state
        shown = self._tail[start - 1].outcome.shown if start > 0 else self._final_shown  # type: ignore[union-attr]
        for entry in self._tail[start:]:
            entry.features = by_seq.get(entry.features.seq, entry.features)
            outcome, state = self._run(entry.features, state, shown)
            shown = outcome.shown
            old = entry.outcome
            moved = old is None or (outcome.shown, outcome.modality_weights) != (
                old.shown,
                old.modality_weights,
            )
            if moved or entry.features.seq in by_seq:
                entry.dirty = True
            entry.outcome = outcome
            entry.state_after = state

    def _finalise(self, seqs: tuple[int, ...]) -> None:
        """Mark steps final (their seqs come from the aligner, oldest first, a prefix of the tail)."""
        wanted = set(seqs)
        count = 0
        while count < len(self._tail) and self._tail[count].features.seq in wanted:
            count += 1
        for entry in self._tail[:count]:
            entry.dirty = True
            entry.outcome = replace(entry.outcome, final=True)  # type: ignore[arg-type]

    def _take_publishable(self) -> list[StepOutcome]:
        """Every step with a version not yet published, with its revision number; final steps
        leave the tail here (and enter the utterance history)."""
        out = []
        keep = []
        for entry in self._tail:
            outcome = entry.outcome
            assert outcome is not None
            if entry.dirty:
                outcome = replace(outcome, revision=entry.published)
                entry.published += 1
                entry.dirty = False
                out.append(outcome)
            if outcome.final:
                self._final_state = entry.state_after
                self._final_shown = outcome.shown
                self._history.append(outcome)
            else:
                keep.append(entry)
        self._tail = keep
        return out

    def steps_between(self, t_start_s: float, t_end_s: float) -> list[StepOutcome]:
        """Latest outcomes of the steps overlapping [t_start_s, t_end_s), final ones first."""
        candidates = list(self._history) + [e.outcome for e in self._tail if e.outcome]
        return [
            o
            for o in candidates
            if o.features.t_end_s > t_start_s and o.features.t_start_s < t_end_s
        ]

    def utterance(self, steps: list[StepOutcome]) -> UtteranceResult:
        n = len(steps)
        cfg = self.engine.config
        if n == 0:  # a segment too short for a step: ULF on zeros, SIM falls back to ULF alone
            zeros = lambda *s: np.zeros(s, np.float32)
            return self.engine.utterance(UtteranceInputs(
                zeros(1, 1, cfg.text_dim), zeros(1, 1, cfg.audio_dim), zeros(1, 1, cfg.visual_dim),
                zeros(1, 1, 3), zeros(1, 1), zeros(1, 1), zeros(1, 1),
            ))  # fmt: skip
        return self.engine.utterance(UtteranceInputs(
            text=np.stack([s.features.text for s in steps])[None],
            audio=np.stack([s.features.audio for s in steps])[None],
            visual=np.stack([s.features.visual for s in steps])[None],
            mask=np.asarray([s.features.present for s in steps], np.float32)[None],
            valid=np.ones((1, n), np.float32),
            intensity=np.asarray([s.intensity for s in steps], np.float32)[None],
            salience=np.asarray([s.salience for s in steps], np.float32)[None],
        ))  # fmt: skip

    def close(self) -> None:
        """The stream is over: let the engine free what it holds for it (a Triton sequence, a
        batched stream's handle). Idempotent."""
        if self._closed:
            return
        self._closed = True
        self.engine.close(self._newest_state)

    @property
    def provisional(self) -> int:
        return len(self._tail)
