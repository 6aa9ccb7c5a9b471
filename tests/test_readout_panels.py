"""The dashboard's readout row in a real offscreen window: the bars, the circumplex point and the
voice trace are drawn from the messages (checked in the rendered pixels), the calibration state
is shown, and the status bar fits the default width with rounded numbers."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from PyQt6.QtGui import QColor, QImage

from contract import messages as m
from ui.dashboard import DashboardWindow
from ui.history import History
from ui.readout_panels import EXPRESSION_COLOURS, VOICE_PEN, ReadoutMemory
from ui.synthetic import SyntheticOptions, synthetic_session

PROBS = (0.05, 0.0, 0.1, 0.6, 0.05, 0.1, 0.1)  # happy leads


def _face(valence: float = 0.4, arousal: float = 0.3) -> m.FaceReadout:
    return m.FaceReadout(m.Expressions(*PROBS), valence=valence, arousal=arousal, quality=0.9)


@pytest.fixture
def window(qtbot):
    w = DashboardWindow(History())
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    return w


def _feed(window: DashboardWindow, msgs: list[m.Message]) -> QImage:
    window.on_messages(msgs)
    for _ in range(3):  # the panel paints at most one part per frame
        window.refresh()
    return window.grab().toImage()


def _colour_at(image: QImage, x: float, y: float) -> QColor:
    return image.pixelColor(int(x), int(y))


def test_bars_and_circumplex_are_drawn_from_the_face_readout(window) -> None:
    msgs = [msg for _, msg in synthetic_session(SyntheticOptions(duration_s=10.0))]
    last = max((x for x in msgs if isinstance(x, m.StepMessage) and x.face), key=lambda s: s.seq)
    mine = replace(last, seq=last.seq + 1, t_start=last.t_end, t_end=last.t_end + 0.1,
                   revision=0, face=_face())  # fmt: skip
    _feed(window, [*msgs, mine])
    bars = window.readouts.bars
    rects = bars.bar_rects()
    widths = np.array([r.width() for r in rects])
    assert np.allclose(widths / widths.max(), np.array(PROBS) / max(PROBS), atol=0.01)
    image = bars.grab().toImage()
    happy = rects[3]
    colour = _colour_at(image, happy.center().x(), happy.center().y())
    assert colour.name() == QColor(EXPRESSION_COLOURS["happy"]).name()
    # the panel is not blank: many colours in the bars' region
    arr = np.array([[image.pixel(x, y) for x in range(0, image.width(), 3)]
                    for y in range(0, image.height(), 3)])  # fmt: skip
    assert len(np.unique(arr)) > 5
    # the newest face point: the filled marker's centre sits at the readout's coordinates
    view = window.readouts.circumplex
    assert view.trail[-1] == (0.4, 0.3) and len(view.trail) > 1
    pt = view.to_px(0.4, 0.3)
    assert _colour_at(view.grab().toImage(), pt.x(), pt.y()).name() == "#e3b341"


def test_no_face_empties_the_bars(window) -> None:
    base = m.StepMessage(session="s", seq=0, t_emit=1.0, t_start=0.0, t_end=0.1, intensity=0.0,
                         modality_weights=m.ModalityWeights(0, 1, 0),
                         present=m.Presence(False, False, True), revision=0, final=True,
                         latency_ms=1.0, face=_face())  # fmt: skip
    _feed(window, [base])
    assert window.readouts.bars.values == PROBS
    gone = replace(base, seq=1, t_start=0.1, t_end=0.2, present=m.Presence(False, False, False),
                   face=None)  # fmt: skip
    _feed(window, [gone])
    assert window.readouts.bars.values is None
    assert all(r.width() == 0 for r in window.readouts.bars.bar_rects())


def test_voice_trace_follows_speech_with_gaps_in_silence() -> None:
    mem = ReadoutMemory()
    voice = m.VoiceReadout(loudness=1.0, pitch=24.0, pitch_variability=2.0, arousal=0.5)
    for k in range(10):
        speech = k < 4 or k >= 7
        mem.apply(m.StepMessage(
            session="s", seq=k, t_emit=1.0, t_start=k / 10, t_end=(k + 1) / 10, intensity=0.0,
            modality_weights=m.ModalityWeights(0, 1, 0), present=m.Presence(False, speech, False),
            revision=0, final=True, latency_ms=1.0, voice=voice if speech else None))  # fmt: skip
    y = list(mem.voice_y)
    assert y[:4] == [0.5] * 4 and np.isnan(y[4]) and y[5:] == [0.5] * 3  # one gap, not zeros


def test_calibration_state_and_status_bar_fit(qtbot, window) -> None:
    msgs = [msg for _, msg in synthetic_session(SyntheticOptions(duration_s=8.0, baseline_s=20))]
    _feed(window, msgs)
    label = window.readouts.calibration_label.text()
    assert label.startswith("baseline: calibrating") and label.endswith("%")
    status = [x for x in msgs if isinstance(x, m.StatusMessage)][-1]
    odd = replace(status, seq=status.seq + 1, step_rate_hz=9.92068,
                  calibration=replace(status.calibration, state="ready", progress=1.0))
    _feed(window, [odd])
    assert window.readouts.calibration_label.text() == "baseline: ready"
    text = window.status_text()
    assert "9.9 steps/s" in text and "9.92068" not in text
    # every status label is shown in full at the default window width
    window.resize(1280, 860)
    qtbot.wait(100)  # let the layout settle
    bar = window.statusBar()
    for name, lbl in window.status_labels.items():
        assert lbl.isVisible(), name
        assert lbl.width() >= lbl.sizeHint().width(), (name, lbl.text())
    assert bar.width() <= window.width()
    # the voice trace has data (synthetic speech), drawn in its colour at a sample's place
    trace = window.readouts.trace
    assert len(trace.t) > 10 and np.isnan(trace.y).any()  # silences are gaps
    image = trace.grab().toImage()
    i = int(np.flatnonzero(np.isfinite(trace.y[:-1]) & np.isfinite(trace.y[1:]))[-1])
    mid = (trace.to_px(trace.t[i], trace.y[i]) + trace.to_px(trace.t[i + 1], trace.y[i + 1])) / 2
    near = [_colour_at(image, mid.x() + dx, mid.y() + dy).name()
            for dx in (-1, 0, 1) for dy in (-1, 0, 1)]  # fmt: skip
    assert QColor(VOICE_PEN).name() in near
