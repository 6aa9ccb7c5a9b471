"""The dashboard's own small widgets: palette, intensity gauge, presence pills, utterance model."""

from __future__ import annotations

from typing import Any

from PyQt6.QtCore import QAbstractTableModel, QModelIndex, QRectF, Qt
from PyQt6.QtGui import QColor, QFont, QPainter, QPen, QPixmap
from PyQt6.QtWidgets import QHBoxLayout, QLabel, QSizePolicy, QVBoxLayout, QWidget

from contract.messages import INTENSITY_MAX, MODALITIES, NEUTRAL_BAND, label_for
from contract.messages import UtteranceMessage as Utterance

# One palette for every panel, so a colour means the same thing everywhere.
BACKGROUND = "#11151c"
PANEL = "#1a1f29"
FOREGROUND = "#d7dde6"
MUTED = "#6b7585"
LABEL_COLOURS = {"negative": "#e5534b", "neutral": "#8b949e", "positive": "#3fb950"}
MODALITY_COLOURS = {"text": "#c297ff", "audio": "#4ea1ff", "visual": "#f0883e"}
WARNING_RED = "#b62324"


def intensity_colour(x: float) -> QColor:
    """Grey at 0, blending to the label colour as |x| grows (full at 1.5)."""
    grey = QColor(LABEL_COLOURS["neutral"])
    target = QColor(LABEL_COLOURS["negative" if x < 0 else "positive"])
    a = min(1.0, abs(x) / 1.5)
    return QColor(
        int(grey.red() + a * (target.red() - grey.red())),
        int(grey.green() + a * (target.green() - grey.green())),
        int(grey.blue() + a * (target.blue() - grey.blue())),
    )


class IntensityGauge(QWidget):
    """A half-dial from -3 to +3 with the value arc, a big number and the label."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._value: float | None = None
        self._provisional = False
        self._dial_cache: tuple[tuple[object, ...], QPixmap] | None = None
        self.setMinimumSize(220, 150)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)  # paintEvent fills it all

    def set_value(self, value: float | None, provisional: bool = False) -> None:
        if (value, provisional) != (self._value, self._provisional):
            self._value, self._provisional = value, provisional
            self.update()

    @property
    def value(self) -> float | None:
        return self._value

    def _geometry(self) -> tuple[float, float, QRectF]:
        w, h = self.width(), self.height()
        radius = max(10.0, min(w / 2 - 16, h - 52))
        thick = max(8.0, radius * 0.16)
        return radius, thick, QRectF(w / 2 - radius, 14 + thick / 2, 2 * radius, 2 * radius)

    def _arc(self, p: QPainter, lo: float, hi: float, colour: QColor) -> None:
        _, thick, box = self._geometry()
        # Qt angles run counter-clockwise from 3 o'clock in 1/16 degree: +3 at 0, -3 at 180.
        start = 90 - hi / INTENSITY_MAX * 90
        span = (hi - lo) / INTENSITY_MAX * 90
        p.setPen(QPen(colour, thick, cap=Qt.PenCapStyle.FlatCap))
        p.drawArc(box, int(start * 16), int(span * 16))

    def _dial(self) -> QPixmap:
        """What does not depend on the value (background, label bands, ends), drawn once per size."""
        dpr = self.devicePixelRatioF()
        key = (self.width(), self.height(), dpr, self.font().key())
        if self._dial_cache is not None and self._dial_cache[0] == key:
            return self._dial_cache[1]
        pix = QPixmap(round(self.width() * dpr), round(self.height() * dpr))
        pix.setDevicePixelRatio(dpr)
        pix.fill(QColor(BACKGROUND))
        p = QPainter(pix)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        for lo, hi, label in ((-3, -NEUTRAL_BAND, "negative"), (-NEUTRAL_BAND, NEUTRAL_BAND,
                              "neutral"), (NEUTRAL_BAND, 3, "positive")):
            dim = QColor(LABEL_COLOURS[label])
            dim.setAlpha(55)
            self._arc(p, lo, hi, dim)
        radius, _, box = self._geometry()
        p.setFont(self._small_font(radius))
        p.setPen(QColor(MUTED))
        centre_y = box.center().y()
        p.drawText(QRectF(box.left() - 20, centre_y + 4, 40, 20), Qt.AlignmentFlag.AlignCenter,
                   "−3")
        p.drawText(QRectF(box.right() - 20, centre_y + 4, 40, 20), Qt.AlignmentFlag.AlignCenter,
                   "+3")
        p.end()
        self._dial_cache = (key, pix)
        return pix

    def _small_font(self, radius: float) -> QFont:
        small = QFont(self.font())
        small.setPixelSize(int(max(10, radius * 0.16)))
        return small

    def paintEvent(self, event: Any) -> None:  # noqa: N802 (Qt's name)
        # It repaints with every step: the static dial is a cached pixmap (the antialiased wide
        # arcs were most of the cost), and the widget is opaque, so nothing behind it repaints.
        p = QPainter(self)
        p.drawPixmap(0, 0, self._dial())
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        radius, _, box = self._geometry()
        w = self.width()
        v = self._value
        colour = intensity_colour(v) if v is not None else QColor(MUTED)
        if v is not None:
            self._arc(p, min(0.0, v), max(0.0, v), colour)
        centre_y = box.center().y()
        big = QFont(self.font())
        big.setPixelSize(int(max(14, radius * 0.42)))
        big.setBold(True)
        p.setFont(big)
        text = "—" if v is None else signed(v)
        p.setPen(colour)
        p.drawText(QRectF(0, centre_y - radius * 0.62, w, radius * 0.55),
                   Qt.AlignmentFlag.AlignCenter, text)
        p.setFont(self._small_font(radius))
        caption = "no data" if v is None else label_for(v) + (" (provisional)"
                                                               if self._provisional else "")
        p.drawText(QRectF(0, centre_y + 4, w, radius * 0.22), Qt.AlignmentFlag.AlignCenter,
                   caption)
        p.end()


# What each modality is to a user: "no face" (the camera saw none) differs from "face: not used
# by this model" (the checkpoint never learned from faces; the model is not shown them).
SENSE_NAMES = {"text": "words", "audio": "voice", "visual": "face"}


class PresencePills(QWidget):
    """One pill per modality: lit when present in the newest step, with its fusion weight;
    outlined, and saying so, when the model does not use the modality at all."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        column = QVBoxLayout(self)
        column.setContentsMargins(0, 0, 0, 0)
        layout = QHBoxLayout()
        column.addLayout(layout)
        self.pills: dict[str, QLabel] = {}
        for m in MODALITIES:
            pill = QLabel(m, self)
            pill.setAlignment(Qt.AlignmentFlag.AlignCenter)
            pill.setMinimumWidth(80)
            layout.addWidget(pill)
            self.pills[m] = pill
        self.note = QLabel("", self)  # "face: not used by this model (why)"; hidden when empty
        self.note.setWordWrap(True)
        self.note.setStyleSheet(f"color: {MUTED}; font-style: italic;")
        self.note.hide()
        column.addWidget(self.note)
        self.set_state(None, None)

    def set_state(self, present: dict[str, bool] | None, weights: dict[str, float] | None,
                  unused: dict[str, str] | None = None) -> None:
        """unused: modality -> why the model does not use it (the status's model_modalities)."""
        unused = unused or {}
        shown = (None if present is None else tuple(
            (present[m], round(weights[m], 2) if weights else None) for m in MODALITIES),
            tuple(sorted(unused.items())))
        if shown == getattr(self, "_shown", ()):
            return  # restyling re-polishes the widget: only when something changed
        self._shown = shown
        note = "; ".join(f"{SENSE_NAMES[m]}: not used by this model "
                         f"({unused[m].removeprefix('not used: ')})" for m in unused)
        self.note.setText(note)
        self.note.setVisible(bool(note))
        for m, pill in self.pills.items():
            on = bool(present and present[m])
            if m in unused:
                sensed = "seen" if on else "not seen"
                pill.setText(f"{SENSE_NAMES[m]} unused")
                pill.setStyleSheet(f"QLabel {{ background: {PANEL}; color: {MUTED};"
                                   f" border: 1px dashed {MUTED}; border-radius: 9px;"
                                   " padding: 3px 8px; font-style: italic; }")
                pill.setToolTip(f"{m} ({sensed} in the newest step) is masked before the model: "
                                f"{unused[m]}")
                continue
            weight = f" {weights[m]:.0%}" if weights is not None else ""
            pill.setText(f"{m}{weight}" if on else f"no {SENSE_NAMES[m]}")
            bg = MODALITY_COLOURS[m] if on else PANEL
            fg = "#0d1117" if on else MUTED
            pill.setStyleSheet(f"QLabel {{ background: {bg}; color: {fg}; border-radius: 9px;"
                               f" padding: 3px 8px; font-weight: bold; }}")
            pill.setToolTip(f"{m}: {'present' if on else 'absent'} in the newest step")


class UtteranceTableModel(QAbstractTableModel):
    """Utterances newest first: time, transcript, three intensities and the label."""

    HEADERS = ("Time", "Transcript", "Utterance", "Time-step", "Final", "Label")

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._rows: list[Utterance] = []

    def set_rows(self, rows: list[Utterance]) -> None:
        self.beginResetModel()  # a few hundred rows at most: a reset is simpler than diffing
        self._rows = rows
        self.endResetModel()

    def rows(self) -> list[Utterance]:
        return list(self._rows)

    def rowCount(self, parent: QModelIndex | None = None) -> int:  # noqa: N802 (Qt's name)
        return 0 if parent is not None and parent.isValid() else len(self._rows)

    def columnCount(self, parent: QModelIndex | None = None) -> int:  # noqa: N802
        return 0 if parent is not None and parent.isValid() else len(self.HEADERS)

    def headerData(self, section: int, orientation: Qt.Orientation,  # noqa: N802
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return self.HEADERS[section]
        return None

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        # Called for every visible cell and every role on each repaint of the table (hundreds of
        # times per frame while utterances arrive): unserved roles return first, and only the
        # cell asked for is formatted.
        role = int(role)
        if role not in _SERVED_ROLES or not index.isValid() or index.row() >= len(self._rows):
            return None
        u, col = self._rows[index.row()], index.column()
        if role == _DISPLAY:
            return _CELL_TEXT[col](u)
        if role == _FOREGROUND:
            return _LABEL_QCOLOURS[u.label] if col in (4, 5) else None
        if role == _ALIGNMENT:
            return _RIGHT if col in (2, 3, 4) else None
        return u.transcript if col == 1 else None  # the tooltip


_DISPLAY = int(Qt.ItemDataRole.DisplayRole)
_FOREGROUND = int(Qt.ItemDataRole.ForegroundRole)
_ALIGNMENT = int(Qt.ItemDataRole.TextAlignmentRole)
_SERVED_ROLES = frozenset((_DISPLAY, _FOREGROUND, _ALIGNMENT, int(Qt.ItemDataRole.ToolTipRole)))
_RIGHT = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
_LABEL_QCOLOURS = {label: QColor(c) for label, c in LABEL_COLOURS.items()}
_CELL_TEXT = (  # one per column of UtteranceTableModel.HEADERS
    lambda u: f"{_clock(u.t_start)}–{_clock(u.t_end)}",
    lambda u: u.transcript if u.speaker is None else f"Person {u.speaker}: {u.transcript}",
    lambda u: signed(u.utterance_intensity),
    lambda u: signed(u.timestep_intensity),
    lambda u: signed(u.final_intensity),
    lambda u: u.label,
)


def signed(x: float) -> str:
    """+1.23 / -1.23, and never "-0.00" (a minus sign on a neutral value misleads)."""
    return f"{round(x, 2) + 0.0:+.2f}"


def _clock(t_s: float) -> str:
    minutes, seconds = divmod(max(0.0, t_s), 60.0)
    return f"{int(minutes)}:{seconds:04.1f}"
