"""The dashboard's people (issue 33): a card per person from `faces`, hidden without them; the
utterance table names the speaker; the preview draws every face's box."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("PyQt6")
from PyQt6.QtWidgets import QApplication  # noqa: E402

from contract.messages import StepMessage, UtteranceMessage  # noqa: E402
from ui.synthetic import SyntheticOptions, synthetic_session  # noqa: E402


@pytest.fixture(scope="module")
def app():
    return QApplication.instance() or QApplication([])


def test_cards_follow_the_newest_faces_and_hide_without_them(app) -> None:
    from ui.people_cards import PeopleCards
    from ui.widgets import UtteranceTableModel

    cards = PeopleCards()
    cards.resize(800, 140)
    msgs = [m for _, m in synthetic_session(SyntheticOptions(duration_s=20.0, people=2))]
    for m in msgs:
        cards.apply(m)
    assert cards.refresh() and cards.isVisible()
    last = max((m for m in msgs if isinstance(m, StepMessage)), key=lambda m: m.seq)
    assert cards.memory.faces == last.faces and {f.id for f in last.faces} <= {1, 2}
    cards.grab()  # paints it
    assert cards.paints >= 1 and not cards.refresh()  # nothing new: no repaint
    utts = [m for m in msgs if isinstance(m, UtteranceMessage)]
    assert {u.speaker for u in utts} == {1, 2}
    model = UtteranceTableModel()
    model.set_rows(utts)
    assert model.data(model.index(0, 1)) == f"Person {utts[0].speaker}: {utts[0].transcript}"
    plain = PeopleCards()
    for _, m in synthetic_session(SyntheticOptions(duration_s=5.0)):
        plain.apply(m)
    plain.refresh()
    assert not plain.isVisible()  # an earlier publisher: no `faces`, no cards


def test_preview_draws_every_face(app) -> None:
    from ui.preview import CameraPreview, FrameSlot

    slot = FrameSlot()
    preview = CameraPreview(slot)
    preview.resize(320, 240)
    slot.push(np.zeros((240, 320, 3), np.uint8), (10, 10, 50, 50), ((1, (10, 10, 50, 50)),
                                                                     (2, (200, 20, 60, 60))))
    assert preview.poll()
    image = preview.grab().toImage()
    green = lambda x, y: image.pixelColor(x, y).green() > 150  # noqa: E731
    assert green(10, 30) and green(200, 40)  # the left edges of both boxes
