"""One card per person in view (issue 33): id, expression bars, valence/arousal point, a speaking
indicator and the person's own baseline state, from each step's `faces` and `speaker`.

`PeopleMemory` (Qt-free) keeps the newest step's faces (each step once, in seq order) and counts
changes in `version`; `PeopleCards` paints every card in one paintEvent with QPainter and cached
QStaticText, only when the version changed (the dashboard's frame budget is 16 ms). Hidden while
the publisher sends no `faces` (an earlier publisher, or --max-faces off).
"""

from __future__ import annotations

from typing import Any

from PyQt6.QtCore import QPointF, QRectF, Qt
from PyQt6.QtGui import QColor, QPainter, QPen
from PyQt6.QtWidgets import QSizePolicy, QWidget

from contract.messages import (
    EXPRESSION_LABELS,
    MAX_FACES,
    Message,
    PersonFace,
    StatusMessage,
    StepMessage,
)
from ui.readout_panels import EXPRESSION_COLOURS, _static
from ui.widgets import FOREGROUND, MUTED, PANEL

SPEAKING = "#3fb950"
CARD_GAP = 6


class PeopleMemory:
    def __init__(self) -> None:
        self.session: str | None = None
        self.faces: tuple[PersonFace, ...] = ()
        self.speaker: int | None = None
        self.seq = -1
        self.seen_faces = False  # the publisher sends `faces` at all
        self.baseline_off = False
        self.version = 0

    def apply(self, msg: Message) -> None:
        if msg.session != self.session:
            self.__init__()
            self.session = msg.session
            self.version += 1
        if isinstance(msg, StatusMessage):
            off = msg.calibration is not None and msg.calibration.state == "off"
            if off != self.baseline_off:
                self.baseline_off, self.version = off, self.version + 1
        elif isinstance(msg, StepMessage) and msg.seq > self.seq and msg.faces is not None:
            # Faces do not change between a step's revisions: each step counts once.
            self.seq, self.seen_faces = msg.seq, True
            if (msg.faces, msg.speaker) != (self.faces, self.speaker):
                self.faces, self.speaker = msg.faces, msg.speaker
                self.version += 1

    def calibration(self, face: PersonFace) -> str:
        if self.baseline_off:
            return "baseline off"
        return "baseline ready" if face.baseline is not None else "calibrating"


class PeopleCards(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.memory = PeopleMemory()
        self._drawn = -1
        self.paints = 0
        self.setMinimumHeight(120)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.hide()

    def apply(self, msg: Message) -> None:
        self.memory.apply(msg)

    def refresh(self) -> bool:
        """Repaint when the faces changed; True when it will."""
        mem = self.memory
        if mem.version == self._drawn:
            return False
        self._drawn = mem.version
        if mem.seen_faces != self.isVisible():
            self.setVisible(mem.seen_faces)
        self.update()
        return True

    def card_rects(self) -> list[QRectF]:
        n = MAX_FACES
        w = (self.width() - CARD_GAP * (n - 1)) / n
        return [QRectF(i * (w + CARD_GAP), 0, w, self.height()) for i in range(n)]

    def paintEvent(self, _event: Any) -> None:  # noqa: N802 (Qt's name)
        self.paints += 1
        p = QPainter(self)
        mem = self.memory
        rects = self.card_rects()
        if not mem.faces:
            p.setPen(QColor(MUTED))
            p.drawStaticText(QPointF(6, 6), _static("People: no face in view"))
        for face, r in zip(mem.faces, rects):
            self._card(p, face, r, face.id == mem.speaker)
        p.end()

    def _card(self, p: QPainter, f: PersonFace, r: QRectF, is_speaker: bool) -> None:
        p.fillRect(r, QColor(PANEL))
        if is_speaker:
            p.setPen(QPen(QColor(SPEAKING), 2))
            p.drawRect(r.adjusted(1, 1, -1, -1))
        p.setPen(QColor(FOREGROUND))
        p.drawStaticText(QPointF(r.left() + 8, r.top() + 4), _static(f"Person {f.id}"))
        # Speaking indicator: a dot filled with the speaking probability, ringed for the speaker.
        dot = QPointF(r.right() - 14, r.top() + 12)
        fill = QColor(SPEAKING)
        fill.setAlphaF(max(0.08, min(1.0, f.speaking)))
        p.setBrush(fill)
        p.setPen(QPen(QColor(SPEAKING if is_speaker else MUTED), 1))
        p.drawEllipse(dot, 6, 6)
        p.setPen(QColor(MUTED))
        p.drawStaticText(QPointF(r.right() - 84, r.top() + 4),
                         _static("speaking" if is_speaker else ""))  # fmt: skip
        p.drawStaticText(QPointF(r.left() + 8, r.bottom() - 18), _static(self.memory.calibration(f)))
        # Expression bars (left) and the valence/arousal point (right).
        side = min(r.height() - 48, r.width() * 0.38)
        bars = QRectF(r.left() + 8, r.top() + 24, r.width() - side - 24, r.height() - 48)
        row_h = bars.height() / len(EXPRESSION_LABELS)
        p.setPen(Qt.PenStyle.NoPen)
        for i, name in enumerate(EXPRESSION_LABELS):
            value = max(0.0, min(1.0, getattr(f.expressions, name)))
            y = bars.top() + i * row_h
            p.setBrush(QColor(EXPRESSION_COLOURS[name]))
            p.drawRect(QRectF(bars.left() + 52, y + 1, (bars.width() - 52) * value,
                              max(1.0, row_h - 2)))  # fmt: skip
        p.setPen(QColor(MUTED))
        for i, name in enumerate(EXPRESSION_LABELS):
            p.drawStaticText(QPointF(bars.left(), bars.top() + i * row_h - 3), _static(name))
        box = QRectF(r.right() - side - 8, r.top() + 24, side, side)
        centre, radius = box.center(), side / 2 - 2
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.setPen(QPen(QColor(MUTED), 1))
        p.drawEllipse(centre, radius, radius)
        p.drawLine(QPointF(box.left(), centre.y()), QPointF(box.right(), centre.y()))
        p.drawLine(QPointF(centre.x(), box.top()), QPointF(centre.x(), box.bottom()))
        point = QPointF(centre.x() + f.valence * radius, centre.y() - f.arousal * radius)
        top = max(EXPRESSION_LABELS, key=lambda n: getattr(f.expressions, n))
        p.setBrush(QColor(EXPRESSION_COLOURS[top]))
        p.setPen(Qt.PenStyle.NoPen)
        p.drawEllipse(point, 4, 4)
