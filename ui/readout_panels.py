"""The face and voice readouts beside the model's sentiment: expression bars, the valence/arousal
point on the circumplex with a short trail, a voice arousal trace and the baseline's calibration
state. These are readouts of the face and the voice, not the model's output (README, "What each
number means").

`ReadoutMemory` (Qt-free) keeps what the panel draws, fed with every decoded message; the panel
redraws only when it changed. Painted with QPainter, except the trace (pyqtgraph).
"""

from __future__ import annotations

import collections
import math

import numpy as np
import pyqtgraph as pg
from PyQt6.QtCore import QPointF, QRectF, Qt
from PyQt6.QtGui import QColor, QPainter, QPen
from PyQt6.QtWidgets import QHBoxLayout, QLabel, QSizePolicy, QVBoxLayout, QWidget

from realtime.messages import (
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
EXPRESSION_COLOURS = {"angry": "#f85149", "disgust": "#a371f7", "fear": "#d29922",
                      "happy": "#3fb950", "sad": "#58a6ff", "surprise": "#f778ba",
                      "neutral": "#8b949e"}  # fmt: skip
VOICE_PEN = "#f0883e"
_LABEL_OFFSETS = {"fear": (-16, -6), "angry": (14, -9), "disgust": (-4, 9)}  # px from the dot


class ReadoutMemory:
    """The newest face readout, a short trail of face points, the voice arousal trace and the
    calibration state of one session; `version` changes whenever any of them does."""

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
        self.version = getattr(self, "version", 0) + 1

    def apply(self, msg: Message) -> None:
        if msg.session != self.session:
            self.reset(msg.session)
        if isinstance(msg, StatusMessage):
            if msg.calibration != self.calibration:
                self.calibration = msg.calibration
                self.version += 1
        elif isinstance(msg, StepMessage):
            self._apply_step(msg)

    def _apply_step(self, s: StepMessage) -> None:
        # Readouts do not change between a step's revisions: each step counts once, in order.
        if s.face is not None and s.seq > self.face_seq:
            self.face, self.face_seq = s.face, s.seq
            self.trail.append((s.face.valence, s.face.arousal))
            self.version += 1
        elif s.face is None and s.seq > self.face_seq and self.face is not None:
            self.face, self.face_seq = None, s.seq  # the face left: the bars say so
            self.version += 1
        if s.voice is not None and s.seq > self.voice_seq:
            self.voice_seq = s.seq
            self.voice_t.append(s.t_end)
            self.voice_y.append(s.voice.arousal)
            self.version += 1
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
        self.setMinimumSize(190, 150)

    def set_face(self, face: FaceReadout | None) -> None:
        values = None if face is None else tuple(
            getattr(face.expressions, k) for k in EXPRESSION_LABELS)  # fmt: skip
        if values != self.values:
            self.values = values
            self.update()

    def bar_rects(self) -> list[QRectF]:
        """Where each bar is drawn (widget pixels), EXPRESSION_LABELS order; for tests."""
        label_w, right = 64.0, 40.0
        row_h = (self.height() - 8) / len(EXPRESSION_LABELS)
        full = max(1.0, self.width() - label_w - right)
        values = self.values or (0.0,) * len(EXPRESSION_LABELS)
        return [QRectF(label_w, 4 + i * row_h + 2, full * v, row_h - 4)
                for i, v in enumerate(values)]  # fmt: skip

    def paintEvent(self, _event) -> None:  # noqa: N802 (Qt's name)
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(PANEL))
        row_h = (self.height() - 8) / len(EXPRESSION_LABELS)
        for i, (label, rect) in enumerate(zip(EXPRESSION_LABELS, self.bar_rects(), strict=True)):
            y = 4 + i * row_h
            p.setPen(QColor(MUTED))
            p.drawText(QRectF(4, y, 58, row_h), Qt.AlignmentFlag.AlignVCenter, label)
            if self.values is None:
                continue
            p.fillRect(rect, QColor(EXPRESSION_COLOURS[label]))
            p.setPen(QColor(FOREGROUND))
            p.drawText(QRectF(self.width() - 38, y, 36, row_h),
                       Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight,
                       f"{100 * self.values[i]:.0f}%")  # fmt: skip
        if self.values is None:
            p.setPen(QColor(MUTED))
            p.drawText(QRectF(64, 0, self.width() - 64, self.height()),
                       Qt.AlignmentFlag.AlignCenter, "no face")  # fmt: skip
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
        p.drawText(QRectF(c.x() + r - 40, c.y() + 1, 44, 14), Qt.AlignmentFlag.AlignRight,
                   "+val")  # fmt: skip
        p.drawText(QRectF(c.x() + 3, c.y() - r - 14, 60, 14), Qt.AlignmentFlag.AlignLeft,
                   "+arousal")  # fmt: skip
        for label, (v, a) in CIRCUMPLEX.items():
            if label == "neutral":
                continue
            pt = self.to_px(v, a)
            p.setPen(QColor(EXPRESSION_COLOURS[label]))
            p.drawEllipse(pt, 2.5, 2.5)
            dx, dy = _LABEL_OFFSETS.get(label, (0, -9))  # angry, fear and disgust nearly meet
            p.drawText(QRectF(pt.x() + dx - 30, pt.y() + dy - 6, 60, 12),
                       Qt.AlignmentFlag.AlignCenter, label[:3])  # fmt: skip
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


class ReadoutPanel(QWidget):
    """Face readout (bars, circumplex), voice arousal trace and calibration, in one row."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.memory = ReadoutMemory()
        self._drawn = -1
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
        self.face_title = QLabel("Face: FER2013 expressions", self)
        face_box.addWidget(self.face_title)
        self.bars = ExpressionBars(self)
        face_box.addWidget(self.bars, 1)
        row.addLayout(face_box, 3)
        self.circumplex = CircumplexView(self)
        self.circumplex.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Expanding)
        self.circumplex.setFixedWidth(180)
        row.addWidget(self.circumplex)
        self.voice_plot = pg.PlotWidget(self)
        vp = self.voice_plot.getPlotItem()
        vp.setTitle(f"<span style='color:{VOICE_PEN}'>Voice arousal</span> (eGeMAPS proxy, "
                    "gaps: silence)", size="9pt")  # fmt: skip
        vp.setYRange(-1.05, 1.05, padding=0)
        vp.setMouseEnabled(x=False, y=False)
        vp.hideButtons()
        vp.getAxis("left").setWidth(30)
        vp.getAxis("left").setTicks([[(-1, "-1"), (0, "0"), (1, "1")]])
        for side in ("left", "bottom"):
            vp.getAxis(side).enableAutoSIPrefix(False)
        vp.addItem(pg.InfiniteLine(pos=0.0, angle=0, pen=pg.mkPen(MUTED, width=1)))
        self.voice_curve = pg.PlotCurveItem(pen=pg.mkPen(VOICE_PEN, width=2), connect="finite")
        vp.addItem(self.voice_curve)
        row.addWidget(self.voice_plot, 5)
        col.addLayout(row, 1)
        self._show_calibration()

    def apply(self, msg: Message) -> None:
        self.memory.apply(msg)

    def refresh(self, window_s: float, latest_t: float) -> bool:
        """Redraw what changed since the last call; True when something was redrawn."""
        mem = self.memory
        if mem.version == self._drawn:
            return False
        self._drawn = mem.version
        self.bars.set_face(mem.face)
        quality = "" if mem.face is None else f" · quality {mem.face.quality:.2f}"
        self.face_title.setText(f"Face: FER2013 expressions{quality}")
        self.circumplex.set_trail(list(mem.trail))
        t = np.fromiter(mem.voice_t, float, len(mem.voice_t))
        y = np.fromiter(mem.voice_y, float, len(mem.voice_y))
        keep = t >= latest_t - window_s
        self.voice_curve.setData(t[keep], y[keep])
        self.voice_plot.setXRange(max(0.0, latest_t - window_s), max(latest_t, 1.0), padding=0)
        self._show_calibration()
        return True

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
