"""Local camera preview with the face box (or, with several people, every face's box and id), for a dashboard in the same process as the capture.

Video never goes on the bus. The capture thread hands frames to a `FrameSlot` (ui/frame_slot.py)
and the GUI timer pulls from it: a slow window simply skips frames.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PyQt6.QtCore import QPointF, QRectF, Qt
from PyQt6.QtGui import QColor, QImage, QPainter, QPen
from PyQt6.QtWidgets import QSizePolicy, QWidget

from ui.frame_slot import FrameSlot
from ui.widgets import MUTED, PANEL

__all__ = ["CameraPreview", "FrameSlot"]


class CameraPreview(QWidget):
    """Paints the newest frame scaled to fit, and the face box over it."""

    def __init__(self, slot: FrameSlot, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._slot = slot
        self._shown = -1
        self._image: QImage | None = None
        self._box: tuple[int, int, int, int] | None = None
        self._faces: tuple = ()
        self.setMinimumSize(160, 120)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def poll(self) -> bool:
        """Take a new frame if there is one (GUI thread); True when it will repaint."""
        version, frame, box = self._slot.take()
        if version == self._shown or frame is None:
            return False
        self._shown = version
        try:
            self._image = _to_qimage(frame)
        except ValueError:
            self._image = None  # a frame of the wrong shape is skipped, not fatal
        self._box, self._faces = box, self._slot.faces()
        self.update()
        return True

    def paintEvent(self, event: Any) -> None:  # noqa: N802 (Qt's name)
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(PANEL))
        if self._image is None:
            p.setPen(QColor(MUTED))
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "no camera frames")
            p.end()
            return
        iw, ih = self._image.width(), self._image.height()
        scale = min(self.width() / iw, self.height() / ih)
        target = QRectF((self.width() - iw * scale) / 2, (self.height() - ih * scale) / 2,
                        iw * scale, ih * scale)
        p.drawImage(target, self._image)
        p.setPen(QPen(QColor("#3fb950"), 2))
        boxes = self._faces  # every tracked face with its id; else the one face box
        if not boxes and self._box is not None:
            boxes = ((None, self._box),)
        for fid, (x, y, w, h) in boxes:
            rect = QRectF(target.left() + x * scale, target.top() + y * scale, w * scale,
                          h * scale)  # fmt: skip
            p.drawRect(rect)
            if fid is not None:
                p.drawText(rect.topLeft() + QPointF(3, -4), f"Person {fid}")
        p.end()


def _to_qimage(frame_bgr: np.ndarray) -> QImage:
    if frame_bgr.ndim != 3 or frame_bgr.shape[2] != 3 or frame_bgr.dtype != np.uint8:
        raise ValueError(f"expected (H, W, 3) uint8, got {frame_bgr.shape} {frame_bgr.dtype}")
    rgb = np.ascontiguousarray(frame_bgr[:, :, ::-1])
    h, w, _ = rgb.shape
    # QImage borrows the buffer; copy() detaches it before `rgb` is freed.
    return QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
