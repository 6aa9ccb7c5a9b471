"""What the dashboard remembers: bounded step, utterance, marker and status history. Qt-free.

Steps live in column arrays sorted by `seq` so that a plot window is one slice, not a loop over
objects: the GUI timer asks for the last 30/60/300 s many times a second. A revision (same `seq`,
higher `revision`) overwrites its row in place; an older or equal revision is stale and ignored. A
step is provisional until a revision with `final: true` arrives. A message from another session
(the publisher restarted) clears everything, since stream time starts again at zero.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from contract.messages import (
    MODALITIES,
    MarkerMessage,
    Message,
    StatusMessage,
    StepMessage,
    UtteranceMessage,
)

log = logging.getLogger(__name__)

WINDOWS_S = (30.0, 60.0, 300.0)


@dataclass(frozen=True)
class HistoryOptions:
    max_window_s: float = max(WINDOWS_S)  # steps older than this behind the newest are dropped
    max_steps: int = 20_000  # hard cap whatever the step rate (300 s at up to ~60 Hz)
    max_utterances: int = 1_000
    max_markers: int = 1_000  # experimenter markers kept (oldest dropped first)

    def __post_init__(self) -> None:
        if (self.max_window_s <= 0 or self.max_steps < 2 or self.max_utterances < 1
                or self.max_markers < 1):
            raise ValueError(f"invalid history options {self}")


@dataclass(frozen=True)
class StepSeries:
    """Steps of one plot window, oldest first (copies: the plot may keep them)."""

    t: np.ndarray  # (N,) float64 step end, stream seconds
    intensity: np.ndarray  # (N,) float64 in [-3, 3]
    final: np.ndarray  # (N,) bool
    weights: np.ndarray  # (N, 3) float32, MODALITIES order
    present: np.ndarray  # (N, 3) bool, MODALITIES order


class History:
    """Bounded memory of one session's stream; `version` changes whenever anything does."""

    def __init__(self, options: HistoryOptions = HistoryOptions()) -> None:
        self.options = options
        cap = options.max_steps
        self._seq = np.zeros(cap, np.int64)
        self._t = np.zeros(cap, np.float64)
        self._y = np.zeros(cap, np.float64)
        self._rev = np.zeros(cap, np.int64)
        self._final = np.zeros(cap, bool)
        self._w = np.zeros((cap, 3), np.float32)
        self._p = np.zeros((cap, 3), bool)
        self.reset()

    def reset(self, session: str | None = None) -> None:
        self.session = session
        self._n = 0
        self._row: dict[int, int] = {}  # seq -> row
        self._utterances: dict[int, UtteranceMessage] = {}
        self._markers: dict[int, MarkerMessage] = {}  # seq -> marker
        self.latest_step: StepMessage | None = None
        self.status: StatusMessage | None = None
        self.stale_revisions = 0
        self.utterance_version = getattr(self, "utterance_version", 0) + 1
        self.marker_version = getattr(self, "marker_version", 0) + 1
        self.version = getattr(self, "version", 0) + 1

    # --- input ------------------------------------------------------------------------------------

    def apply(self, msg: Message) -> bool:
        """Take one decoded message; False when it changed nothing (a stale revision)."""
        if msg.session != self.session:
            if self.session is not None:
                log.info("new session %r replaces %r: history cleared", msg.session, self.session)
            self.reset(msg.session)
        if isinstance(msg, StepMessage):
            changed = self._apply_step(msg)
        elif isinstance(msg, UtteranceMessage):
            changed = self._apply_utterance(msg)
        elif isinstance(msg, MarkerMessage):
            changed = self._apply_marker(msg)
        else:
            self.status = msg
            changed = True
        if changed:
            self.version += 1
        return changed

    def apply_all(self, msgs: Iterable[Message]) -> int:
        return sum(self.apply(m) for m in msgs)

    def _apply_step(self, s: StepMessage) -> bool:
        row = self._row.get(s.seq)
        if row is not None:
            if s.revision <= self._rev[row]:
                self.stale_revisions += 1
                return False
        else:
            if self._n == len(self._seq):
                self._evict(force=True)
            if self._n and s.seq < self._seq[self._n - 1]:
                row = self._insert_row(s.seq)  # late arrival of an old step: keep seq order
            else:
                row = self._n
                self._n += 1
            self._row[s.seq] = row
        self._seq[row], self._t[row], self._y[row] = s.seq, s.t_end, s.intensity
        self._rev[row], self._final[row] = s.revision, s.final
        w, p = s.modality_weights, s.present
        self._w[row] = (w.text, w.audio, w.visual)
        self._p[row] = (p.text, p.audio, p.visual)
        if self.latest_step is None or s.seq >= self.latest_step.seq:
            self.latest_step = s
        if self._n % 512 == 0:
            self._evict(force=False)
        return True

    def _insert_row(self, seq: int) -> int:
        row = int(np.searchsorted(self._seq[: self._n], seq))
        for col in (self._seq, self._t, self._y, self._rev, self._final, self._w, self._p):
            col[row + 1 : self._n + 1] = col[row : self._n].copy()
        self._n += 1
        self._row = {int(q): i for i, q in enumerate(self._seq[: self._n])}
        return row

    def _evict(self, force: bool) -> None:
        """Drop steps beyond the longest window; when full regardless, drop the older half."""
        n = self._n
        keep_from = int(np.searchsorted(self._t[:n], self.latest_time - self.options.max_window_s))
        if force:
            keep_from = max(keep_from, n // 2)
        if keep_from <= 0:
            return
        for col in (self._seq, self._t, self._y, self._rev, self._final, self._w, self._p):
            col[: n - keep_from] = col[keep_from:n].copy()
        self._n = n - keep_from
        self._row = {int(q): i for i, q in enumerate(self._seq[: self._n])}

    def _apply_utterance(self, u: UtteranceMessage) -> bool:
        old = self._utterances.get(u.utterance_id)
        if old is not None and old.seq >= u.seq:
            return False  # a duplicate or an older re-send
        self._utterances[u.utterance_id] = u
        self.utterance_version += 1
        while len(self._utterances) > self.options.max_utterances:
            del self._utterances[min(self._utterances)]
        return True

    def _apply_marker(self, mk: MarkerMessage) -> bool:
        if mk.seq in self._markers:
            return False  # a duplicate
        self._markers[mk.seq] = mk
        self.marker_version += 1
        while len(self._markers) > self.options.max_markers:
            del self._markers[min(self._markers)]
        return True

    # --- output -----------------------------------------------------------------------------------

    @property
    def latest_time(self) -> float:
        """Stream time of the newest step end (0 before any step)."""
        return float(self._t[self._n - 1]) if self._n else 0.0

    @property
    def step_count(self) -> int:
        return self._n

    def steps(self, window_s: float | None = None) -> StepSeries:
        n = self._n
        start = 0
        if window_s is not None and n:
            start = int(np.searchsorted(self._t[:n], self.latest_time - window_s, side="left"))
        sl = slice(start, n)
        series = StepSeries(self._t[sl].copy(), self._y[sl].copy(), self._final[sl].copy(),
                            self._w[sl].copy(), self._p[sl].copy())
        if len(series.t) > 1 and bool(np.any(np.diff(series.t) < 0)):
            # Times that go backwards as seq goes up break the publisher's contract; plot in
            # time order anyway (the plot's clipping and downsampling assume sorted x).
            order = np.argsort(series.t, kind="stable")
            series = StepSeries(*(a[order] for a in (series.t, series.intensity, series.final,
                                                     series.weights, series.present)))
        return series

    def utterances(self, since_t: float | None = None) -> list[UtteranceMessage]:
        """Newest first; with `since_t`, only those ending at or after that stream time."""
        items = sorted(self._utterances.values(), key=lambda u: (u.t_start, u.utterance_id))
        if since_t is not None:
            items = [u for u in items if u.t_end >= since_t]
        return items[::-1]

    def markers(self, since_t: float | None = None) -> list[MarkerMessage]:
        """Oldest first; with `since_t`, only those at or after that stream time."""
        items = sorted(self._markers.values(), key=lambda mk: (mk.t_stream, mk.seq))
        return items if since_t is None else [mk for mk in items if mk.t_stream >= since_t]


CSV_COLUMNS = ("utterance_id", "t_start", "t_end", "transcript", "utterance_intensity",
               "timestep_intensity", "final_intensity", "label", "session")


def write_utterances_csv(utterances: Iterable[UtteranceMessage], path: str | Path) -> int:
    """Write utterances as CSV (the table's order); returns the number of rows."""
    rows = 0
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS)
        for u in utterances:
            writer.writerow([u.utterance_id, u.t_start, u.t_end, u.transcript,
                             u.utterance_intensity, u.timestep_intensity, u.final_intensity,
                             u.label, u.session])
            rows += 1
    return rows


__all__ = ["History", "HistoryOptions", "StepSeries", "WINDOWS_S", "MODALITIES",
           "write_utterances_csv"]
