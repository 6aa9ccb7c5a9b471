"""pyqtgraph items of the dashboard's plots that stay cheap while the plot scrolls every frame."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyqtgraph as pg
from PyQt6.QtCore import QLineF, QPointF, QRectF, Qt
from PyQt6.QtGui import QColor, QPainter, QPen, QStaticText

LABEL_GAP_PX = 6  # least free space between two marker labels
LABEL_MARGIN_PX = 4  # text inset from its line (what a pyqtgraph TextItem's margin looked like)
HOVER_PX = 4  # how near the pointer must be to a marker line for its tooltip


class LineOverlay(pg.GraphicsObject):
    """Horizontal guide lines and labelled vertical marker lines of one plot, as one item.

    A pyqtgraph InfiniteLine is one item per line, and each recomputes its end points, bounding
    rect and label placement in Python whenever the view moves, i.e. on every frame of a
    scrolling plot: with the 300 s window's ~45 markers and 7 guides that was ~2 ms per frame.
    This item maps the few coordinates it needs to device pixels itself and strokes 1-px cosmetic
    pens there. Marker labels are drawn newest first and skipped where they would overlap a
    newer one (a long window's markers can be closer than their labels are wide); every
    marker's full text is its line's tooltip.
    """

    def __init__(self, hlines: Sequence[tuple[float, QPen]] = (), marker_pen: QPen | None = None,
                 label_colour: str | QColor = "#ffffff", label_at: float = 0.96) -> None:
        super().__init__()
        self._hlines = [(float(y), QPen(pen)) for y, pen in hlines]
        for _, pen in self._hlines:
            pen.setCosmetic(True)
        self._marker_pen = QPen(marker_pen if marker_pen is not None else QPen(QColor(label_colour)))
        self._marker_pen.setCosmetic(True)
        self._label_colour = QColor(label_colour)
        self._label_at = label_at  # label top, as a fraction of the height from the bottom
        self._markers: list[tuple[float, str, str]] = []  # (x, label, tooltip), x ascending
        self._texts: dict[str, QStaticText] = {}
        self._rect: QRectF | None = None
        self.labels_drawn: list[str] = []  # by the latest paint, newest first (for tests)
        self.setAcceptHoverEvents(True)  # for the tooltips; clicks go to the plot beneath
        self.setAcceptedMouseButtons(Qt.MouseButton.NoButton)

    def set_markers(self, markers: Sequence[tuple[float, str, str]]) -> None:
        """(x, label, tooltip) per marker; drawn until the next call."""
        self._markers = sorted(((float(x), label, tip) for x, label, tip in markers),
                               key=lambda m: m[0])
        live = {label for _, label, _ in self._markers}
        self._texts = {k: v for k, v in self._texts.items() if k in live}
        self.update()

    def markers(self) -> list[tuple[float, str]]:
        return [(x, label) for x, label, _ in self._markers]

    # --- QGraphicsItem ------------------------------------------------------------------------

    def viewTransformChanged(self) -> None:  # noqa: N802 (pyqtgraph's name)
        super().viewTransformChanged()
        self.prepareGeometryChange()  # the item spans the view: it moves with it
        self._rect = None

    def boundingRect(self) -> QRectF:  # noqa: N802 (Qt's name)
        if self._rect is None:
            view = self.viewRect()
            self._rect = QRectF() if view is None else QRectF(view)
        return self._rect

    def paint(self, p: QPainter, *args: Any) -> None:
        rect = self.boundingRect()
        if rect.isEmpty():
            return
        to_px = p.transform()
        px = to_px.mapRect(rect)  # the view in device pixels
        p.resetTransform()  # from here on in pixels: cosmetic pens, text at its natural size
        p.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        left, right, top, bottom = px.left(), px.right(), px.top(), px.bottom()
        for y, pen in self._hlines:
            if rect.top() <= y <= rect.bottom():
                yp = to_px.map(QPointF(0.0, y)).y()
                p.setPen(pen)
                p.drawLine(QLineF(left, yp, right, yp))
        shown = [(to_px.map(QPointF(x, 0.0)).x(), label) for x, label, _ in self._markers
                 if rect.left() <= x <= rect.right()]
        if not shown:
            self.labels_drawn = []
            return
        p.setPen(self._marker_pen)
        p.drawLines([QLineF(xp, top, xp, bottom) for xp, _ in shown])
        p.setPen(self._label_colour)
        label_top = bottom - self._label_at * (bottom - top) + LABEL_MARGIN_PX
        free_until = float("inf")  # labels must end left of this (the newer label's start)
        drawn = []
        for xp, label in reversed(shown):
            text = self._texts.get(label)
            if text is None:
                text = self._texts[label] = QStaticText(label)
                text.prepare(font=p.font())
            x_text = xp + LABEL_MARGIN_PX
            if label and x_text + text.size().width() + LABEL_GAP_PX <= free_until:
                p.drawStaticText(QPointF(x_text, label_top), text)
                free_until = xp
                drawn.append(label)
        self.labels_drawn = drawn

    def hoverEvent(self, ev: Any) -> None:  # noqa: N802 (pyqtgraph's name)
        """Tooltip of the marker line under the pointer, if any (Qt shows an item's tooltip)."""
        tip = ""
        if not ev.isExit() and self._markers:
            x = ev.pos().x()
            width = self.pixelWidth() or 0.0
            near = min(self._markers, key=lambda m: abs(m[0] - x))
            if abs(near[0] - x) <= HOVER_PX * width:
                tip = near[2]
        if tip != self.toolTip():
            self.setToolTip(tip)
