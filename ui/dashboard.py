"""The dashboard window: widgets and drawing only. Data comes from History; nothing here blocks.

Every plot item is created once in the constructor; a timer calls `refresh()`, which pushes the
current window of data with `setData` only when the history changed since the last frame.
Provisional steps (no `final` revision yet) are drawn as a dashed, lighter line. Experimenter
markers are vertical lines labelled with their text, all drawn by one overlay item.
"""

from __future__ import annotations

import logging
from html import escape
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PyQt6.QtCore import Qt, QTimer
from PyQt6.QtGui import QColor
from PyQt6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMainWindow,
    QPushButton,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from contract.messages import NEUTRAL_BAND, MarkerMessage, Message, StatusMessage, UtteranceMessage
from ui.history import WINDOWS_S, History, write_utterances_csv
from ui.people_cards import PeopleCards
from ui.plot_items import LineOverlay
from ui.preview import CameraPreview, FrameSlot
from ui.readout_panels import ReadoutPanel
from ui.status_bar import StatusBarMixin
from ui.widgets import (
    BACKGROUND,
    FOREGROUND,
    LABEL_COLOURS,
    MODALITY_COLOURS,
    MUTED,
    PANEL,
    WARNING_RED,
    IntensityGauge,
    PresencePills,
    UtteranceTableModel,
    signed,
)

log = logging.getLogger(__name__)
FINAL_PEN = "#e6edf3"
PROVISIONAL_PEN = "#e3b341"  # amber and dashed: this part may still change
MARKER_PEN = "#39c5cf"  # cyan: no label or modality uses it
MAX_MARKER_LINES = 100  # the newest markers in the window; more would be an unreadable comb
REFRESH_MS = 33
WEIGHT_SAMPLES = 400  # ~30 frames/s: smooth scrolling, and well under the 100 ms drawing-lag target
STEPS_PER_COLUMN = 5  # downsample (peaks kept) beyond this many steps per pixel column


def _colour(hex_colour: str, alpha: int = 255) -> QColor:
    c = QColor(hex_colour)
    c.setAlpha(alpha)
    return c


class DashboardWindow(StatusBarMixin, QMainWindow):
    """Feed it with `on_messages`, `on_connection`, `on_rejected`; it redraws on its own timer."""

    def __init__(self, history: History, title: str = "affect monitor",
                 preview: FrameSlot | None = None, refresh_ms: int = REFRESH_MS) -> None:
        super().__init__()
        self.history = history
        self.window_s = WINDOWS_S[1]
        self.frames_drawn = 0
        self.draw_errors = 0
        self._drawn_version = -1
        self._drawn_utterances = -1
        self._drawn_spans: tuple[int, float] = (-1, 0.0)
        self._drawn_markers: tuple[int, float] = (-1, 0.0)
        self._drawn_status: object = None
        self.setWindowTitle(title)
        self.resize(1280, 860)
        self.setStyleSheet(f"QMainWindow, QWidget {{ background: {BACKGROUND};"
                           f" color: {FOREGROUND}; }}"
                           f" QTableView {{ background: {PANEL}; gridline-color: {BACKGROUND}; }}"
                           f" QHeaderView::section {{ background: {PANEL}; color: {MUTED};"
                           " border: none; padding: 4px; }"
                           " QStatusBar QLabel { padding: 0 5px; }")
        # No antialiasing in the plots: on a software rasteriser it costs ~4 ms per 3000-point
        # line, and at one point per pixel (or fewer, downsampled) it is barely visible.
        pg.setConfigOptions(antialias=False, background=BACKGROUND, foreground=MUTED)

        central = QWidget(self)
        root = QVBoxLayout(central)
        root.setContentsMargins(10, 8, 10, 4)
        self.banner = QLabel(central)  # security and source warnings, hidden when all is well
        self.banner.setWordWrap(True)
        self.banner.setStyleSheet(f"background: {WARNING_RED}; color: white; font-weight: bold;"
                                  " padding: 6px; border-radius: 4px;")
        self.banner.hide()
        root.addWidget(self.banner)
        splitter = QSplitter(Qt.Orientation.Vertical, central)
        splitter.addWidget(self._build_plots())
        self.readouts = ReadoutPanel(splitter)  # face and voice readouts, beside the sentiment
        splitter.addWidget(self.readouts)
        self.people = PeopleCards(splitter)  # a card per person; hidden without `faces`
        splitter.addWidget(self.people)
        splitter.addWidget(self._build_table())
        splitter.setSizes([400, 180, 130, 150])
        root.addWidget(splitter, 1)
        self.setCentralWidget(central)
        self._build_status_bar()

        self.preview: CameraPreview | None = None
        if preview is not None:
            self.preview = CameraPreview(preview, self._side)
            self._side.layout().addWidget(self.preview, 1)
        self.timer = QTimer(self)
        self.timer.setInterval(refresh_ms)
        self.timer.timeout.connect(self.refresh)
        self.timer.start()

    # --- construction -----------------------------------------------------------------------------

    def _build_plots(self) -> QWidget:
        box = QWidget(self)
        row = QHBoxLayout(box)
        row.setContentsMargins(0, 0, 0, 0)
        plots = pg.GraphicsLayoutWidget(box)
        row.addWidget(plots, 1)

        self.intensity_plot = plots.addPlot(row=0, col=0)
        ip = self.intensity_plot
        ip.setTitle(_intensity_title(), size="11pt")
        ip.setLabel("left", "intensity")
        ip.getAxis("left").setWidth(44)  # same width in both plots keeps their time axes aligned
        ip.hideAxis("bottom")  # the weights plot below carries the (linked) time axis
        ip.setYRange(-3.2, 3.2, padding=0)
        ip.setMouseEnabled(x=False, y=False)
        ip.hideButtons()
        # Only what is in view; downsampled (peaks kept) where steps outnumber pixel columns 5 to 1
        # (faster step rates than 10/s over 300 s). The factor is set in _refresh from the step
        # count: pyqtgraph's auto mode divides the view by the mean step spacing, and steps whose
        # times all but coincide (corrupt yet schema-valid, found by the fuzz test) made that
        # factor so large that numpy refused the reshape and the frame was not drawn.
        ip.setDownsampling(ds=1, auto=False, mode="peak")
        ip.setClipToView(True)
        # Guides and markers are LineOverlay items (one per layer, not one InfiniteLine per line:
        # at 300 s those cost ~4 ms per frame, recomputed in Python whenever the view scrolls).
        # Light guides under the utterance spans; a full grid costs ~10 ms per frame to blend.
        faint = pg.mkPen(_colour(MUTED, 45))
        ip.addItem(LineOverlay(hlines=[(y, faint) for y in (-2, -1, 1, 2)]), ignoreBounds=True)
        self.spans = pg.BarGraphItem(x0=[], x1=[], y0=[], height=[], brushes=[], pen=None)
        ip.addItem(self.spans)
        band = pg.mkPen(_colour(MUTED, 120), width=1, style=Qt.PenStyle.DotLine)
        ip.addItem(LineOverlay(hlines=[(0.0, pg.mkPen(MUTED, width=1)), (-NEUTRAL_BAND, band),
                                       (NEUTRAL_BAND, band)]),  # zero and the neutral label band
                   ignoreBounds=True)
        self._final_width = 2
        self._downsample = 1
        self.final_curve = pg.PlotDataItem(pen=pg.mkPen(FINAL_PEN, width=2), connect="finite")
        self.provisional_curve = pg.PlotDataItem(
            pen=pg.mkPen(PROVISIONAL_PEN, width=2, style=Qt.PenStyle.DashLine), connect="finite")
        ip.addItem(self.final_curve)
        ip.addItem(self.provisional_curve)
        self.marker_overlay = LineOverlay(  # experimenter markers, over the curves
            marker_pen=pg.mkPen(MARKER_PEN, width=1, style=Qt.PenStyle.DashLine),
            label_colour=MARKER_PEN, label_at=0.96)
        ip.addItem(self.marker_overlay, ignoreBounds=True)
        self.weights_plot = plots.addPlot(row=1, col=0)
        wp = self.weights_plot
        wp.setTitle("Modality weights (AMLP): " + " ".join(
            f"<span style='color:{c}'>■ {m}</span>" for m, c in MODALITY_COLOURS.items()),
            size="10pt")
        wp.setLabel("bottom", "stream time (s)")
        wp.setYRange(0, 1, padding=0)
        wp.setXLink(ip)
        wp.setMouseEnabled(x=False, y=False)
        wp.hideButtons()
        wp.getAxis("left").setTicks([[(0, "0"), (0.5, ".5"), (1, "1")]])
        wp.getAxis("left").setWidth(44)
        # Major and minor ticks only: the third level (5 s at 300 s) was ~60 more ticks regenerated
        # in Python on every scroll, 1-2 px long and mostly under the filled areas anyway.
        wp.getAxis("bottom").setStyle(maxTickLevel=1)
        # Stacked areas as three curves filled down to 0, drawn back to front (text on top):
        # cheaper than FillBetweenItem, which rebuilds a combined path for every pair. Bare
        # PlotCurveItems: refresh() already thins them to ~400 samples, and PlotDataItem's
        # clipping and downsampling layer cost ~0.4 ms per frame for the three doing nothing.
        self.stack_curves = []
        for m in reversed(MODALITY_COLOURS):
            curve = pg.PlotCurveItem(pen=pg.mkPen(None), fillLevel=0.0,
                                     brush=_blend(MODALITY_COLOURS[m], BACKGROUND, 0.8))
            wp.addItem(curve)
            self.stack_curves.insert(0, curve)  # index 0: text (bottom layer, drawn last)
        plots.ci.layout.setRowStretchFactor(0, 3)
        plots.ci.layout.setRowStretchFactor(1, 1)
        for plot in (ip, wp):
            for side in ("left", "bottom", "top", "right"):
                # Auto SI prefixes re-set each axis label's HTML on every range change, i.e. every
                # frame of a scrolling plot; stream seconds and intensities never want a prefix.
                plot.getAxis(side).enableAutoSIPrefix(False)

        self._side = QWidget(box)
        side = QVBoxLayout(self._side)
        side.setContentsMargins(0, 0, 0, 0)
        self.window_select = QComboBox(self._side)
        for w in WINDOWS_S:
            text = f"last {w:.0f} s" if w < 120 else f"last {w / 60:.0f} min"
            self.window_select.addItem(text, w)
        self.window_select.setCurrentIndex(WINDOWS_S.index(self.window_s))
        self.window_select.currentIndexChanged.connect(
            lambda i: self.set_window(self.window_select.itemData(i)))
        side.addWidget(self.window_select)
        self.gauge = IntensityGauge(self._side)
        side.addWidget(self.gauge, 2)
        self.pills = PresencePills(self._side)
        side.addWidget(self.pills)
        self.last_utterance = QLabel("No utterance yet", self._side)
        self.last_utterance.setWordWrap(True)
        self.last_utterance.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.last_utterance.setStyleSheet(f"background: {PANEL}; border-radius: 6px; padding: 8px;")
        side.addWidget(self.last_utterance, 1)
        self._side.setFixedWidth(300)
        row.addWidget(self._side)
        return box

    def _build_table(self) -> QWidget:
        box = QWidget(self)
        col = QVBoxLayout(box)
        col.setContentsMargins(0, 4, 0, 0)
        head = QHBoxLayout()
        self.table_title = QLabel("Utterances (newest first)", box)
        head.addWidget(self.table_title)
        head.addStretch(1)
        export = QPushButton("Export CSV…", box)
        export.clicked.connect(self._ask_export)
        head.addWidget(export)
        col.addLayout(head)
        self.table_model = UtteranceTableModel(box)
        self.table = QTableView(box)
        self.table.setModel(self.table_model)
        self.table.verticalHeader().hide()
        self.table.setSelectionBehavior(QTableView.SelectionBehavior.SelectRows)
        header = self.table.horizontalHeader()
        # Fixed widths: ResizeToContents would measure every row on each update (slow in bursts).
        header.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        for column, width in enumerate((110, 0, 86, 86, 70, 84)):
            self.table.setColumnWidth(column, width)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().setDefaultSectionSize(28)
        col.addWidget(self.table)
        return box

    # --- input (GUI thread, from the subscriber's signals) --------------------------------------

    def on_messages(self, msgs: list[Message]) -> None:
        for msg in msgs:
            try:
                self.history.apply(msg)
                self.readouts.apply(msg)
                self.people.apply(msg)
            except Exception:  # a bug in one message's handling must not close the monitor
                log.exception("could not apply %s", type(msg).__name__)

    def set_window(self, window_s: float) -> None:
        self.window_s = float(window_s)
        self._drawn_version = -1  # redraw at the next frame

    # --- drawing ----------------------------------------------------------------------------------

    def refresh(self) -> None:
        """One frame: push changed data into the items created at construction."""
        try:
            self._refresh()
        except Exception:  # an unforeseen corner of the data must cost a frame, not the window
            self.draw_errors += 1
            if self.draw_errors <= 3 or self.draw_errors % 100 == 0:
                log.exception("drawing failed (%d so far)", self.draw_errors)

    def _refresh(self) -> None:
        h = self.history
        if self.preview is not None:
            self.preview.poll()
        self.readouts.refresh(self.window_s, h.latest_time)
        self.people.refresh()
        if h.version == self._drawn_version:
            return
        self._drawn_version = h.version
        self.frames_drawn += 1
        series = h.steps(self.window_s)
        t, y = series.t, series.intensity
        final_y = np.where(series.final, y, np.nan)
        # The dashed line covers provisional steps plus their final neighbours, so it joins on.
        prov = ~series.final
        near = prov | np.r_[prov[1:], False] | np.r_[False, prov[:-1]]
        # A 2-px line goes through Qt's wide-line stroker, ~0.6 us per segment against a fraction
        # of that for a cosmetic 1-px one: 2 px while the window has no more steps than the plot
        # has pixel columns (30 s, 60 s), 1 px where they are denser (300 s: ~3 per column, where
        # the width blurs rather than helps and cost ~1.8 ms per frame).
        columns = self.intensity_plot.vb.width()  # 0 until the window is laid out
        width = 1 if columns and len(t) > columns else 2
        if width != self._final_width:
            self._final_width = width
            self.final_curve.setPen(pg.mkPen(FINAL_PEN, width=width))
        downsample = max(1, len(t) // (STEPS_PER_COLUMN * int(columns))) if columns else 1
        if downsample != self._downsample:
            self._downsample = downsample
            self.intensity_plot.setDownsampling(ds=downsample, auto=False, mode="peak")
        self.final_curve.setData(t, final_y)
        # Only the span that holds provisional steps (normally the newest ~1.5 s): a window-long
        # array of NaNs cost ~0.4 ms per frame in finite checks, bounds and path building.
        idx = np.flatnonzero(near)
        part = slice(idx[0], idx[-1] + 1) if len(idx) else slice(0, 0)
        self.provisional_curve.setData(t[part], np.where(near[part], y[part], np.nan))
        # Weights drift slowly: ~400 samples across the window are plenty, and filling three
        # areas under 3000-vertex outlines would be the costliest part of a frame.
        every = max(1, len(t) // WEIGHT_SAMPLES)
        stacked = np.cumsum(series.weights[::-1][::every][::-1], axis=1)  # (M, 3), newest kept
        t_w = t[::-1][::every][::-1]
        for i, curve in enumerate(self.stack_curves):
            curve.setData(t_w, stacked[:, i])
        latest = h.latest_time
        self.intensity_plot.setXRange(max(0.0, latest - self.window_s), max(latest, 1.0),
                                      padding=0.01)
        if (h.utterance_version, self.window_s) != self._drawn_spans:
            self._drawn_spans = (h.utterance_version, self.window_s)
            self._draw_spans(latest - self.window_s)
        if (h.marker_version, self.window_s) != self._drawn_markers:
            self._drawn_markers = (h.marker_version, self.window_s)
            self._draw_markers(h.markers(since_t=latest - self.window_s)[-MAX_MARKER_LINES:])
        step = h.latest_step
        self.gauge.set_value(None if step is None else step.intensity,
                             provisional=step is not None and not step.final)
        self.pills.set_state(
            None if step is None else vars(step.present),
            None if step is None else vars(step.modality_weights), _unused(h.status))
        if h.utterance_version != self._drawn_utterances:
            self._drawn_utterances = h.utterance_version
            rows = h.utterances()
            self.table_model.set_rows(rows)
            self._show_last_utterance(rows[0] if rows else None)
        if h.status is not self._drawn_status:
            self._drawn_status = h.status
            self._show_status()

    def _show_last_utterance(self, u: UtteranceMessage | None) -> None:
        if u is None:
            self.last_utterance.setText("No utterance yet")
            return
        who = "" if u.speaker is None else f" · Person {u.speaker}"
        self.last_utterance.setText(
            f"<div style='color:{MUTED}'>Last utterance{who}</div>"
            f"<div style='font-size:13pt; margin:4px 0'>“{escape(u.transcript)}”</div>"
            f"<div style='color:{LABEL_COLOURS[u.label]}; font-size:15pt; font-weight:bold'>"
            f"{u.label} {signed(u.final_intensity)}</div>")

    def _draw_spans(self, since_t: float) -> None:
        utts = self.history.utterances(since_t=since_t)
        self.spans.setOpts(
            x0=[u.t_start for u in utts], x1=[u.t_end for u in utts],
            y0=[-3.0] * len(utts), height=[6.0] * len(utts),
            brushes=[_SPAN_BRUSHES[u.label] for u in utts])

    def _draw_markers(self, markers: list[MarkerMessage]) -> None:
        self.marker_overlay.set_markers(
            [(mk.t_stream, mk.value[:40], f"{mk.source}: {mk.value}") for mk in markers])

    # --- export -----------------------------------------------------------------------------------

    def export_csv(self, path: str | Path) -> int:
        rows = write_utterances_csv(self.table_model.rows(), path)
        log.info("exported %d utterances to %s", rows, path)
        return rows

    def _ask_export(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export utterances", "utterances.csv",
                                              "CSV (*.csv)")
        if path:
            try:
                self.export_csv(path)
            except OSError as exc:
                log.error("export to %s failed: %s", path, exc)
                self.statusBar().showMessage(f"export failed: {exc}", 5000)


def _blend(fg: str, bg: str, a: float) -> QColor:
    """An opaque mix: solid fills are much cheaper to rasterise than translucent ones."""
    f, b = QColor(fg), QColor(bg)
    return QColor(*(round(a * x + (1 - a) * y) for x, y in
                    zip(f.getRgb()[:3], b.getRgb()[:3], strict=True)))


_SPAN_BRUSHES = {k: pg.mkBrush(_blend(c, BACKGROUND, 0.24)) for k, c in LABEL_COLOURS.items()}


def _intensity_title() -> str:
    spans = " ".join(f"<span style='color:{c}'>■ {k}</span>" for k, c in LABEL_COLOURS.items())
    return (f"<span style='color:{FOREGROUND}'>Sentiment intensity per time step</span>"
            f"&nbsp;&nbsp;<span style='color:{FINAL_PEN}'>━ final</span>"
            f"&nbsp;<span style='color:{PROVISIONAL_PEN}'>┅ provisional</span>"
            f"&nbsp;&nbsp;utterances: {spans}"
            f"&nbsp;&nbsp;<span style='color:{MARKER_PEN}'>┆ marker</span>")


def _unused(status: StatusMessage | None) -> dict[str, str]:
    """Modalities the model does not use, with why (the status's model_modalities)."""
    use = None if status is None else status.model_modalities
    return {} if use is None else {m: v for m, v in vars(use).items() if v != "used"}

