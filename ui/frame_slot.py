"""The hand-off of camera frames from the capture thread to an in-process dashboard. Qt-free.

It keeps only the newest frame and never blocks the producer, so a slow window skips frames and
never holds up capture. main.py can create one without importing Qt.
"""

from __future__ import annotations

import threading

import numpy as np


class FrameSlot:
    """Thread-safe holder of the newest frame and face box; `push` from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._frame: np.ndarray | None = None
        self._box: tuple[int, int, int, int] | None = None
        self._faces: tuple = ()  # ((id, (x, y, w, h)), ...): every tracked face
        self.version = 0

    def push(self, image_bgr: np.ndarray, box: tuple[int, int, int, int] | None,
             faces: tuple = ()) -> None:  # fmt: skip
        """`image_bgr`: (H, W, 3) uint8, handed over (not copied); `box`: (x, y, w, h) or None;
        `faces`: ((id, box), ...) of every tracked face (issue 33), drawn with their ids."""
        with self._lock:
            self._frame, self._box, self._faces = image_bgr, box, tuple(faces)
            self.version += 1

    def faces(self) -> tuple:
        with self._lock:
            return self._faces

    def take(self) -> tuple[int, np.ndarray | None, tuple[int, int, int, int] | None]:
        with self._lock:
            return self.version, self._frame, self._box
