"""The face and voice readouts beside the model's sentiment: expression bars, the valence/arousal
point on the circumplex with a short trail, a voice arousal trace and the baseline's calibration
state. These are readouts of the face and the voice, not the model's output (docs/readouts.md,
"What each number means").

`ReadoutMemory` (Qt-free) keeps what the panel draws, fed with every decoded message. Cost, since
the dashboard's frame budget is 16 ms: all three parts are painted with QPainter and cached
QStaticText (a pyqtgraph plot here cost ~3 ms a frame in axis work alone), a part is repainted
only when its data changed, and at most one part per frame.
"""

from __future__ import annotations

import collections
import math

import numpy as np
from PyQt6.QtCore import QPointF, QRectF, Qt
from PyQt6.QtGui import QColor, QPainter, QPen, QPolygonF, QStaticText
from PyQt6.QtWidgets import QHBoxLayout, QLabel, QSizePolicy, QVBoxLayout, QWidget
from pyqtgraph.functions import create_qpolygonf, ndarray_from_qpolygonf

from contract.messages import (
    CIRCUMPLEX,
    EXPRESSION_LABELS,
    FaceReadout,
    Message,
    StatusMessage,
    StepMessage,
)
from ui.widgets import FOREGROUND, MUTED, PANEL

TRAIL_STEPS = 20  # face points in the trail: 2 s at 10 steps/s
MAX_TRACE = 4000  # voice arousal samples kept (over 300 s of speech at 10 Hz)
TRACE_POINTS = 400  # the trace is thinned to about this many points (NaN gaps kept)
SCROLL_S = 0.5  # in silence the trace's time axis follows the stream this often
EXPRESSION_COLOURS = {"angry": "#f85149", "disgust": "#a371f7", "fear": "#d29922",
                      "happy": "#3fb950", "sad": "#58a6ff", "surprise": "#f778ba",
                      "neutral": "#8b949e"}  # fmt: skip
VOICE_PEN = "#f0883e"
_LABEL_OFFSETS = {"fear": (-16, -6), "angry": (14, -9), "disgust": (-4, 9)}  # px from the dot


_STATIC: dict[str, QStaticText] = {}


def _static(text: str) -> QStaticText:
    """A cached QStaticText: its layout is computed once, not at every paint."""
    st = _STATIC.get(text)
    if st is None:
        st = _STATIC[text] = QStaticText(text)
        st.setTextFormat(Qt.TextFormat.PlainText)
        st.setPerformanceHint(QStaticText.PerformanceHint.AggressiveCaching)
    return st


class ReadoutMemory:
    """The newest face readout, a short trail of face points, the voice arousal trace and the
    calibration state of one session; `versions` count changes of each (face, voice,
    calibration), so the panel redraws only the part that changed."""

    def __init__(self) -> None:
        self.reset(None)

    def reset(self, session: str | None) -> None:
        self.session = session
        self.face: FaceReadout | None = None
        self.face_seq = -1
        self.trail: collections.deque[tuple[float, float]] = collections.deque(maxlen=TRAIL_STEPS)
        self.voice_t: collections.deque[float] = collections.deque(maxlen=MAX_TRACE)
        self.voice_y: collections.deque[float] = collections.deque(maxlen=MAX_TRACE)
        self.voice_seq = -1
        self.calibration = None
        old = getattr(self, "versions", {"face": 0, "voice": 0, "calibration": 0})
        self.versions = {k: v + 1 for k, v in old.items()}

    def apply(self, msg: Message) -> None:
        if msg.session != self.session:
            self.reset(msg.session)
        if isinstance(msg, StatusMessage):
            if msg.calibration != self.calibration:
                self.calibration = msg.calibration
                self.versions["calibration"] += 1
        elif isinstance(msg, StepMessage):
            self._apply_step(msg)

    def _apply_step(self, s: StepMessage) -> None:
        # Readouts do not change between a step's revisions: each step counts once, in order.
        if s.face is not None and s.seq > self.face_seq:
            self.face, self.face_seq = s.face, s.seq
            self.trail.append((s.face.valence, s.face.arousal))
            self.versions["face"] += 1
        elif s.face is None and s.seq > self.face_seq and self.face is not None:
            self.face, self.face_seq = None, s.seq  # the face left: the bars say so
            self.versions["face"] += 1
        if s.voice is not None and s.seq > self.voice_seq:
            self.voice_seq = s.seq
            self.voice_t.append(s.t_end)
            self.voice_y.append(s.voice.arousal)
            self.versions["voice"] += 1
        elif s.voice is None and s.seq > self.voice_seq:
            self.voice_seq = s.seq  # a gap in the trace: silence is not a reading
            if self.voice_y and not math.isnan(self.voice_y[-1]):
                self.voice_t.append(s.t_end)
                self.voice_y.append(math.nan)


class ExpressionBars(QWidget):
    """Seven horizontal bars: the FER2013 class probabilities of the newest face step."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.values: tuple[float, ...] | None = None
        self.quality: float | None = None
        self.setMinimumSize(190, 150)

    def set_face(self, face: FaceReadout | None) -> None:
        values = None if face is None else tuple(
            getattr(face.expressions, k) for k in EXPRESSION_LABELS)  # fmt: skip
        quality = None if face is None else face.quality
        if (values, quality) != (self.values, self.quality):
            self.values, self.quality = values, quality
            self.update()

    def bar_rects(self) -> list[QRectF]:
        """Where each bar is drawn (widget pixels), EXPRESSION_LABELS order; for tests."""
        label_w, right = 64.0, 40.0
        row_h = (self.height() - 22) / len(EXPRESSION_LABELS)
        full = max(1.0, self.width() - label_w - right)
        values = self.values or (0.0,) * len(EXPRESSION_LABELS)
        return [QRectF(label_w, 4 + i * row_h + 2, full * v, row_h - 4)
                for i, v in enumerate(values)]  # fmt: skip

    def paintEvent(self, _event) -> None:  # noqa: N802 (Qt's name)
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(PANEL))
        row_h = (self.height() - 22) / len(EXPRESSION_LABELS)
        for i, (label, rect) in enumerate(zip(EXPRESSION_LABELS, self.bar_rects(), strict=True)):
            y = 4 + i * row_h
            p.setPen(QColor(MUTED))
            p.drawStaticText(QPointF(4, y + row_h / 2 - 8), _static(label))
            if self.values is None:
                continue
            p.fillRect(rect, QColor(EXPRESSION_COLOURS[label]))
            p.setPen(QColor(FOREGROUND))
            p.drawText(QRectF(self.width() - 38, y, 36, row_h),
                       Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight,
                       f"{100 * self.values[i]:.0f}%")  # fmt: skip
        p.setPen(QColor(MUTED))
        if self.values is None:
            p.drawText(QRectF(64, 0, self.width() - 64, self.height()),
                       Qt.AlignmentFlag.AlignCenter, "no face")  # fmt: skip
        else:
            p.drawText(QRectF(4, self.height() - 18, self.width() - 8, 16),
                       Qt.AlignmentFlag.AlignRight,
                       f"detector confidence {self.quality:.2f}")  # fmt: skip
        p.end()


class CircumplexView(QWidget):
    """Valence (x) and arousal (y) in [-1, 1] on a circle, the classes' anchor points, the
    newest point and a fading trail of the last TRAIL_STEPS face steps."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.trail: list[tuple[float, float]] = []
        self.setMinimumSize(150, 150)

    def set_trail(self, trail: list[tuple[float, float]]) -> None:
        if trail != self.trail:
            self.trail = trail
            self.update()

    def to_px(self, valence: float, arousal: float) -> QPointF:
        r = self._radius()
        return QPointF(self.width() / 2 + valence * r, self.height() / 2 - arousal * r)

    def _radius(self) -> float:
        return max(10.0, min(self.width(), self.height()) / 2 - 16)

    def paintEvent(self, _event) -> None:  # noqa: N802 (Qt's name)
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(PANEL))
        r = self._radius()
        c = self.to_px(0.0, 0.0)
        p.setPen(QPen(QColor(MUTED), 1))
        p.drawEllipse(c, r, r)
        p.drawLine(QPointF(c.x() - r, c.y()), QPointF(c.x() + r, c.y()))
        p.drawLine(QPointF(c.x(), c.y() - r), QPointF(c.x(), c.y() + r))
        p.drawStaticText(QPointF(c.x() + r - 34, c.y() + 1), _static("+val"))
        p.drawStaticText(QPointF(c.x() + 3, c.y() - r - 16), _static("+arousal"))
        for label, (v, a) in CIRCUMPLEX.items():
            if label == "neutral":
                continue
            pt = self.to_px(v, a)
            p.setPen(QColor(EXPRESSION_COLOURS[label]))
            p.drawEllipse(pt, 2.5, 2.5)
            dx, dy = _LABEL_OFFSETS.get(label, (0, -9))  # angry, fear and disgust nearly meet
            p.drawStaticText(QPointF(pt.x() + dx - 9, pt.y() + dy - 8), _static(label[:3]))
        n = len(self.trail)
        for i in range(1, n):
            colour = QColor(FOREGROUND)
            colour.setAlpha(40 + int(180 * i / n))
            p.setPen(QPen(colour, 2))
            p.drawLine(self.to_px(*self.trail[i - 1]), self.to_px(*self.trail[i]))
        if n:
            p.setPen(QPen(QColor("#ffffff"), 2))
            p.setBrush(QColor("#e3b341"))
            p.drawEllipse(self.to_px(*self.trail[-1]), 6, 6)
        p.end()


class ArousalTrace(QWidget):
    """Voice arousal in [-1, 1] over the plot window: an orange line, broken in silence."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.t = np.zeros(0)
        self.y = np.zeros(0)
        self.span = (0.0, 1.0)  # stream seconds shown, left to right
        self.setMinimumSize(200, 120)

    def set_data(self, t: np.ndarray, y: np.ndarray, t0: float, t1: float) -> None:
        self.t, self.y, self.span = t, y, (t0, max(t1, t0 + 1e-3))
        self.update()

    def _frame(self) -> tuple[float, float, float, float]:
        return 28.0, 20.0, self.width() - 36.0, self.height() - 38.0  # left, top, width, height

    def to_px(self, t: float, y: float) -> QPointF:
        left, top, w, h = self._frame()
        t0, t1 = self.span
        return QPointF(left + (t - t0) / (t1 - t0) * w, top + (1.0 - y) / 2.0 * h)

    def _polyline(self, t: np.ndarray, y: np.ndarray) -> QPolygonF:
        """Pixels of samples, filled in place through numpy (a Python loop of QPointFs cost
        ~3 ms for 900 points)."""
        left, top, w, h = self._frame()
        t0, t1 = self.span
        poly = create_qpolygonf(len(t))
        xy = ndarray_from_qpolygonf(poly)
        xy[:, 0] = left + (t - t0) / (t1 - t0) * w
        xy[:, 1] = top + (1.0 - y) / 2.0 * h
        return poly

    def paintEvent(self, _event) -> None:  # noqa: N802 (Qt's name)
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(PANEL))
        p.setPen(QColor(VOICE_PEN))
        p.drawStaticText(QPointF(28, 1), _static("Voice arousal"))
        p.setPen(QColor(MUTED))
        p.drawStaticText(QPointF(118, 1), _static("(eGeMAPS proxy; gaps: silence)"))
        t0, t1 = self.span
        for y in (-1.0, 0.0, 1.0):
            a, b = self.to_px(t0, y), self.to_px(t1, y)
            p.setPen(QPen(QColor(MUTED), 1, Qt.PenStyle.SolidLine if y == 0 else Qt.PenStyle.DotLine))
            p.drawLine(a, b)
            p.drawStaticText(QPointF(4, a.y() - 8), _static(f"{y:+.0f}" if y else "0"))
        step = next(s for s in (5, 10, 30, 60, 120, 600) if (t1 - t0) / s <= 8)
        tick = math.ceil(t0 / step) * step
        while tick <= t1:
            pt = self.to_px(tick, -1.0)
            p.drawLine(pt, QPointF(pt.x(), pt.y() + 3))
            p.drawStaticText(QPointF(pt.x() - 10, pt.y() + 3), _static(f"{tick:.0f}"))
            tick += step
        p.setPen(QPen(QColor(VOICE_PEN), 2))
        finite = np.isfinite(self.y)
        # one polyline per run of finite samples: a NaN (silence) breaks the line
        edges = np.flatnonzero(np.diff(np.r_[0, finite.astype(np.int8), 0]))
        for a, b in zip(edges[::2], edges[1::2], strict=True):
            if b - a >= 2:
                p.drawPolyline(self._polyline(self.t[a:b], self.y[a:b]))
        p.end()


class ReadoutPanel(QWidget):
    """Face readout (bars, circumplex), voice arousal trace and calibration, in one row."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.memory = ReadoutMemory()
        self._drawn: dict[str, int] = {}
        self._trace_owed = False  # the face was drawn last frame: the trace goes first
        self._trace_at: tuple[float, float] = (-1.0, -1.0)  # (window, latest time) last drawn
        col = QVBoxLayout(self)
        col.setContentsMargins(0, 2, 0, 0)
        col.setSpacing(2)
        head = QHBoxLayout()
        title = QLabel(
            f"<b>Readouts</b> <span style='color:{MUTED}'>(what the face and voice show; not "
            "the model's sentiment)</span>", self)  # fmt: skip
        head.addWidget(title)
        head.addStretch(1)
        self.calibration_label = QLabel("", self)
        head.addWidget(self.calibration_label)
        col.addLayout(head)
        row = QHBoxLayout()
        row.setSpacing(6)
        face_box = QVBoxLayout()
        self.face_title = QLabel("Face: FER2013 expressions, mean over the step", self)
        face_box.addWidget(self.face_title)
        self.bars = ExpressionBars(self)
        face_box.addWidget(self.bars, 1)
        row.addLayout(face_box, 3)
        self.circumplex = CircumplexView(self)
        self.circumplex.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Expanding)
        self.circumplex.setFixedWidth(180)
        row.addWidget(self.circumplex)
        self.trace = ArousalTrace(self)
        row.addWidget(self.trace, 5)
        col.addLayout(row, 1)
        self._show_calibration()

    def apply(self, msg: Message) -> None:
        self.memory.apply(msg)

    def refresh(self, window_s: float, latest_t: float) -> bool:
        """Redraw the parts that changed since the last call; True when something was redrawn.
        Cheap when nothing did: the dashboard calls it every frame."""
        mem, drawn = self.memory, self._drawn
        changed = {k for k, v in mem.versions.items() if drawn.get(k) != v}
        scroll = (window_s != self._trace_at[0]
                  or abs(latest_t - self._trace_at[1]) >= SCROLL_S)  # fmt: skip
        if "calibration" in changed:
            self._show_calibration()
            drawn["calibration"] = mem.versions["calibration"]
        # At most one painted part per frame: the face now, the trace at the next frame.
        if "face" in changed and not self._trace_owed:
            self.bars.set_face(mem.face)
            self.circumplex.set_trail(list(mem.trail))
            drawn["face"] = mem.versions["face"]
            self._trace_owed = "voice" in changed or scroll
            return True
        self._trace_owed = False
        if "voice" in changed or scroll:
            self._draw_trace(window_s, latest_t)
            drawn["voice"] = mem.versions["voice"]
            return True
        return bool(changed)

    def _draw_trace(self, window_s: float, latest_t: float) -> None:
        mem = self.memory
        t = np.fromiter(mem.voice_t, float, len(mem.voice_t))
        y = np.fromiter(mem.voice_y, float, len(mem.voice_y))
        keep = t >= latest_t - window_s
        t, y = t[keep], y[keep]
        every = max(1, len(t) // TRACE_POINTS)
        if every > 1:  # thin, keeping every gap (NaN) so silences stay gaps
            thin = (np.arange(len(t)) % every == 0) | np.isnan(y)
            t, y = t[thin], y[thin]
        self.trace.set_data(t, y, max(0.0, latest_t - window_s), max(latest_t, 1.0))
        self._trace_at = (window_s, latest_t)

    def _show_calibration(self) -> None:
        c = self.memory.calibration
        if c is None:
            text, tip = "baseline: –", "no calibration state from the publisher"
        elif c.state == "off":
            text, tip = "baseline: off", "--baseline-s 0: no per-person baseline"
        elif c.state == "calibrating":
            text = f"baseline: calibrating {100 * c.progress:.0f}%"
            tip = (f"face {c.face_s:.0f} s, speech {c.voice_s:.0f} s of {c.baseline_s:g} s seen; "
                   "then readouts are also given relative to this person")  # fmt: skip
        else:
            text = "baseline: ready" + (" (loaded)" if c.loaded else "")
            tip = "readouts are also given relative to this person's first seconds"
        if text != self.calibration_label.text():
            self.calibration_label.setText(text)
            self.calibration_label.setToolTip(tip)
