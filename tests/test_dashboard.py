"""The dashboard against a real ZeroMQ publisher and a real (offscreen) Qt window."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PyQt6.QtCore import QPointF

from contract import messages as m
from ui.app import DashboardOptions, connect_window, display_available, run_dashboard
from ui.dashboard import DashboardWindow
from ui.frame_slot import FrameSlot
from ui.history import History, HistoryOptions
from ui.subscriber import Subscriber, SubscriberOptions
from ui.synthetic import SyntheticOptions, synthetic_session

REPO = Path(__file__).resolve().parents[1]
SHORT = SyntheticOptions(duration_s=20.0)


def _msgs(opts: SyntheticOptions = SHORT) -> list[m.Message]:
    return [msg for _, msg in synthetic_session(opts)]


class Publisher:
    """A PUB socket on a fixed loopback port that can be closed and reopened (a restart)."""

    def __init__(self) -> None:
        self.sock: zmq.Socket | None = self._socket()
        port = self.sock.bind_to_random_port("tcp://127.0.0.1")
        self.endpoint = f"tcp://127.0.0.1:{port}"

    @staticmethod
    def _socket() -> zmq.Socket:
        sock = zmq.Context.instance().socket(zmq.PUB)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDHWM, 100_000)
        return sock

    def open(self) -> None:
        """Bind the same port again; libzmq releases a closed socket's port asynchronously."""
        self.sock = self._socket()
        deadline = time.monotonic() + 5.0
        while True:
            try:
                self.sock.bind(self.endpoint)
                return
            except zmq.ZMQError as exc:
                if exc.errno != zmq.EADDRINUSE or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def close(self) -> None:
        assert self.sock is not None
        self.sock.close(linger=0)
        self.sock = None

    def send(self, msgs: list[m.Message]) -> None:
        assert self.sock is not None
        for msg in msgs:
            self.sock.send_multipart(m.encode(msg.TOPIC, msg))

    def send_raw(self, frames: list[bytes]) -> None:
        assert self.sock is not None
        self.sock.send_multipart(frames)


@pytest.fixture
def publisher() -> Iterator[Publisher]:
    pub = Publisher()
    yield pub
    if pub.sock is not None:
        pub.close()


@pytest.fixture
def dashboard(qtbot, publisher: Publisher) -> Iterator[tuple[DashboardWindow, Subscriber]]:
    window = DashboardWindow(History())
    sub = Subscriber(SubscriberOptions(endpoint=publisher.endpoint, stall_after_s=1.0,
                                       reconnect_ms=50), parent=window)
    connect_window(window, sub)
    qtbot.addWidget(window)
    window.show()
    yield window, sub
    sub.close()


def _join(qtbot, pub: Publisher, sub: Subscriber) -> None:
    """Send status until the subscription has reached the publisher (ZeroMQ's slow joiner)."""
    status = next(x for x in _msgs(SyntheticOptions(duration_s=2.0)) if x.TOPIC == m.TOPIC_STATUS)
    for _ in range(250):
        pub.send([status])
        qtbot.wait(20)
        if sub.received:
            return
    raise AssertionError("subscriber never received anything")


def test_shows_points_rows_and_status(qtbot, publisher: Publisher, dashboard) -> None:
    window, sub = dashboard
    _join(qtbot, publisher, sub)
    msgs = _msgs()
    publisher.send(msgs)
    n_steps = len({x.seq for x in msgs if x.TOPIC == m.TOPIC_STEP})
    n_utts = sum(x.TOPIC == m.TOPIC_UTTERANCE for x in msgs)
    qtbot.waitUntil(lambda: sub.received >= len(msgs) + 1, timeout=5000)
    window.refresh()
    assert window.history.step_count == n_steps == 200
    x, y = window.final_curve.getData()
    assert len(x) == n_steps  # one point per step, revisions replaced in place
    finals = int(np.isfinite(y).sum())
    assert finals == n_steps - SHORT.settle_steps  # the newest steps are still provisional
    assert np.isfinite(window.provisional_curve.getData()[1]).sum() == SHORT.settle_steps + 1
    assert window.table_model.rowCount() == n_utts >= 3
    newest = max((x for x in msgs if x.TOPIC == m.TOPIC_UTTERANCE), key=lambda u: u.t_start)
    assert window.table_model.rows()[0] == newest  # newest first
    last_status = [x for x in msgs if x.TOPIC == m.TOPIC_STATUS][-1]
    text = window.status_text()
    assert "engine onnx" in text and f"{last_status.fps:.1f} fps" in text
    assert f"p50 {last_status.latency_p50_ms:.0f} ms" in text and "connected" in text
    assert "malformed 0" in text and "bound beyond loopback" not in text
    newest_step = max((x for x in msgs if x.TOPIC == m.TOPIC_STEP), key=lambda s: s.seq)
    assert window.gauge.value == newest_step.intensity

    window.set_window(10.0)  # a shorter window shows fewer points: the newest 10 s
    window.refresh()
    x10, _ = window.final_curve.getData()
    assert 100 <= len(x10) <= 101 and x10[-1] == pytest.approx(20.0)


def test_insecure_publisher_is_shown_in_red(qtbot, publisher: Publisher, dashboard) -> None:
    window, sub = dashboard
    _join(qtbot, publisher, sub)
    opts = replace(SHORT, duration_s=2.0, endpoint="tcp://0.0.0.0:5556", loopback=False,
                   insecure=True)
    publisher.send([x for x in _msgs(opts) if x.TOPIC == m.TOPIC_STATUS])
    qtbot.waitUntil(lambda: window.history.status is not None
                    and window.history.status.security.insecure, timeout=3000)
    window.refresh()
    assert window.banner.isVisible()
    assert "bound beyond loopback at tcp://0.0.0.0:5556" in window.status_text()


def test_markers_are_drawn_as_labelled_lines(qtbot, publisher: Publisher, dashboard) -> None:
    window, sub = dashboard
    _join(qtbot, publisher, sub)
    msgs = _msgs()
    markers = [x for x in msgs if x.TOPIC == m.TOPIC_MARKER]
    publisher.send(msgs)
    qtbot.waitUntil(lambda: len(window.history.markers()) == len(markers) >= 3, timeout=5000)
    window.refresh()
    shown = window.marker_overlay.markers()
    assert [x for x, _ in shown] == [mk.t_stream for mk in markers]
    assert [label for _, label in shown] == [mk.value for mk in markers]
    window.grab()  # paint: the labels that fit are drawn, the newest always
    drawn = window.marker_overlay.labels_drawn
    assert drawn and drawn[0] == markers[-1].value and set(drawn) <= {mk.value for mk in markers}

    class Hover:  # what pyqtgraph's HoverEvent gives the item
        def __init__(self, x: float) -> None:
            self.x = x

        def isExit(self) -> bool:  # noqa: N802
            return False

        def pos(self) -> QPointF:
            return QPointF(self.x, 0.0)

    window.marker_overlay.hoverEvent(Hover(markers[1].t_stream))
    assert window.marker_overlay.toolTip() == f"{markers[1].source}: {markers[1].value}"
    window.marker_overlay.hoverEvent(Hover((markers[0].t_stream + markers[1].t_stream) / 2))
    assert window.marker_overlay.toolTip() == ""  # between markers: no tooltip
    window.set_window(10.0)  # only the markers of the newest 10 s stay
    window.refresh()
    latest = window.history.latest_time
    recent = [mk for mk in markers if mk.t_stream >= latest - 10.0]
    assert [x for x, _ in window.marker_overlay.markers()] == [mk.t_stream for mk in recent]


def test_reconnects_after_publisher_restart(qtbot, publisher: Publisher, dashboard) -> None:
    window, sub = dashboard
    _join(qtbot, publisher, sub)
    qtbot.waitUntil(lambda: sub.state.value == "connected", timeout=3000)
    publisher.close()
    qtbot.waitUntil(lambda: sub.state.value == "disconnected", timeout=3000)
    assert "disconnected" in window.status_text()
    publisher.open()  # same port: a restarted pipeline
    qtbot.waitUntil(lambda: sub.reconnects == 1, timeout=5000)
    before = sub.received
    restarted = _msgs(replace(SHORT, session="restarted", duration_s=3.0))
    for _ in range(100):  # the subscription is re-sent after reconnecting; wait until it lands
        publisher.send(restarted[:1])
        qtbot.wait(20)
        if sub.received > before:
            break
    publisher.send(restarted)
    qtbot.waitUntil(lambda: window.history.step_count == 30, timeout=3000)
    assert window.history.session == "restarted"  # a new session clears the old one
    window.refresh()
    assert "connected · reconnects 1" in window.status_text()


def test_stalled_when_publisher_goes_quiet(qtbot, publisher: Publisher, dashboard) -> None:
    window, sub = dashboard
    _join(qtbot, publisher, sub)
    qtbot.waitUntil(lambda: sub.state.value == "stalled", timeout=3000)  # stall_after_s = 1
    assert "stalled" in window.status_text()


def test_garbage_and_wrong_versions_are_counted_and_ignored(qtbot, publisher: Publisher,
                                                          dashboard) -> None:
    window, sub = dashboard
    _join(qtbot, publisher, sub)
    step = next(x for x in _msgs() if x.TOPIC == m.TOPIC_STEP)
    wrong_version = {**step.to_dict(), "v": 2}
    garbage = [
        [b"msrg.step", b"\xff\xfe\x00"],
        [b"msrg.step"],
        [b"msrg.step", b"{}", b"extra"],
        [b"msrg.status", b"{}"],
        [b"msrg.stepping", b"{}"],
        [b"msrg.utterance", b"null"],
        [b"msrg.step", json.dumps({**step.to_dict(), "intensity": 99}).encode()],
    ]
    for frames in garbage:
        publisher.send_raw(frames)
    publisher.send_raw([b"msrg.step", json.dumps(wrong_version).encode()])
    publisher.send_raw([b"msrg.step", json.dumps(wrong_version).encode()])
    publisher.send([step])
    qtbot.waitUntil(lambda: window.history.step_count == 1, timeout=3000)
    assert (sub.malformed, sub.wrong_version) == (len(garbage), 2)
    window.refresh()
    assert f"malformed {len(garbage)} · wrong ver 2" in window.status_text()


# --- fuzzing: random bytes and schema-violating JSON never crash the window -----------------------

VALID = {x.TOPIC: x.to_dict() for x in reversed(_msgs(SyntheticOptions(duration_s=8.0)))}
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=20)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=10,
)


@st.composite
def mutated_json(draw: st.DrawFn) -> list[bytes]:
    topic = draw(st.sampled_from(m.TOPICS))
    obj = dict(VALID[topic])
    for key in draw(st.lists(st.sampled_from(sorted(obj)), min_size=1, max_size=3)):
        if draw(st.booleans()):
            obj[key] = draw(json_values)
        else:
            obj.pop(key, None)
    return [topic.encode(), json.dumps(obj).encode()]


@st.composite
def odd_valid_steps(draw: st.DrawFn) -> list[bytes]:
    """Schema-valid but extreme: huge times, out-of-order seqs, old revisions."""
    obj = dict(VALID[m.TOPIC_STEP])
    t = draw(st.floats(0, m.MAX_STREAM_S / 2))
    obj.update(seq=draw(st.integers(0, m.MAX_COUNT)), revision=draw(st.integers(0, 5)),
               t_start=t, t_end=t + draw(st.floats(0, m.MAX_STREAM_S / 2)),
               final=draw(st.booleans()),
               intensity=draw(st.floats(-3, 3)))
    return [m.TOPIC_STEP.encode(), json.dumps(obj).encode()]


frames_strategy = (
    st.lists(st.binary(max_size=64), max_size=4)
    | st.tuples(st.sampled_from([t.encode() for t in m.TOPICS]), st.binary(max_size=200)).map(list)
    | mutated_json()
    | odd_valid_steps()
)


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(frames_strategy, min_size=1, max_size=8))
def test_fuzz_decode_and_draw_never_crash(qtbot, dashboard, batch: list[list[bytes]]) -> None:
    window, sub = dashboard
    decoded = [msg for frames in batch if (msg := sub.decode(frames)) is not None]
    window.on_messages(decoded)
    window.refresh()
    _assert_drawn(window)


@settings(max_examples=5, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(frames_strategy.filter(bool), min_size=20, max_size=40))
def test_fuzz_through_the_socket(qtbot, publisher: Publisher, dashboard,
                                 batch: list[list[bytes]]) -> None:
    window, sub = dashboard
    if not sub.received:
        _join(qtbot, publisher, sub)
    base = sub.received
    for frames in batch:
        publisher.send_raw(frames)
    # The subscription filters by prefix: only msrg.* topics reach the dashboard.
    sent = sum(any(f[0].startswith(t.encode()) for t in m.TOPICS) for f in batch)
    qtbot.waitUntil(lambda: sub.received - base == sent, timeout=3000)
    window.refresh()
    _assert_drawn(window)


def _assert_drawn(window: DashboardWindow) -> None:
    """refresh() swallows an exception (a frame lost, not the window), so a draw test must check
    that none was swallowed and that the plot holds exactly the history's steps."""
    assert window.draw_errors == 0  # the guard in refresh() is a last resort, not the plan
    series = window.history.steps(window.window_s)
    t, y = window.final_curve.xData, window.final_curve.yData  # as set, before display clipping
    t = np.array([]) if t is None else np.asarray(t)
    assert np.array_equal(t, np.asarray(series.t))
    finals = np.asarray(series.final, bool)
    if len(t):
        assert np.array_equal(np.isfinite(np.asarray(y)), finals & np.isfinite(series.intensity))


# --- history (Qt-free) ----------------------------------------------------------------------------


def _step(seq: int, revision: int = 0, final: bool = False, session: str = "s",
          intensity: float = 0.0) -> m.StepMessage:
    base = next(x for x in _msgs(SyntheticOptions(duration_s=1.0)) if x.TOPIC == m.TOPIC_STEP)
    return replace(base, session=session, seq=seq, t_start=seq * 0.1, t_end=(seq + 1) * 0.1,
                   revision=revision, final=final, intensity=intensity)


def test_history_revisions_replace_and_stale_are_ignored() -> None:
    h = History()
    assert h.apply(_step(0, 0, intensity=1.0))
    assert h.apply(_step(0, 2, final=True, intensity=2.0))
    assert not h.apply(_step(0, 1, intensity=-1.0))  # older revision arrives late
    assert h.stale_revisions == 1
    s = h.steps()
    assert list(s.intensity) == [2.0] and list(s.final) == [True]


def test_history_keeps_seq_order_and_windows() -> None:
    h = History()
    for seq in [0, 1, 2, 5, 3, 4]:
        h.apply(_step(seq))
    assert list(h.steps().t) == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    assert len(h.steps(window_s=0.25).t) == 3


def test_history_is_bounded_by_time_and_count() -> None:
    h = History(HistoryOptions(max_window_s=10.0, max_steps=500))
    for seq in range(5000):
        h.apply(_step(seq))
    assert h.step_count <= 500
    assert h.steps().t[0] >= h.latest_time - 10.0 - 0.1 * 512  # evicted in 512-step batches
    assert h.latest_step is not None and h.latest_step.seq == 4999


def test_history_new_session_clears() -> None:
    h = History()
    h.apply(_step(3))
    h.apply(_step(0, session="other"))
    assert h.session == "other" and h.step_count == 1


def test_csv_export(qtbot, tmp_path: Path) -> None:
    window = DashboardWindow(History())
    qtbot.addWidget(window)
    window.on_messages(_msgs())
    window.refresh()
    rows = window.export_csv(tmp_path / "u.csv")
    with open(tmp_path / "u.csv", newline="", encoding="utf-8") as f:
        table = list(csv.DictReader(f))
    assert len(table) == rows == window.table_model.rowCount()
    assert table[0]["transcript"] == window.table_model.rows()[0].transcript
    assert {r["label"] for r in table} <= set(m.LABELS)


def test_utterance_table_cells() -> None:
    from PyQt6.QtCore import Qt

    from ui.widgets import LABEL_COLOURS, UtteranceTableModel
    model = UtteranceTableModel()
    u = next(x for x in _msgs() if x.TOPIC == m.TOPIC_UTTERANCE)
    model.set_rows([u])
    role = Qt.ItemDataRole
    texts = [model.data(model.index(0, c)) for c in range(model.columnCount())]
    assert texts[1:] == [u.transcript, f"{u.utterance_intensity:+.2f}",
                         f"{u.timestep_intensity:+.2f}", f"{u.final_intensity:+.2f}", u.label]
    assert texts[0].count(":") == 2 and "–" in texts[0]
    assert model.data(model.index(0, 5), role.ForegroundRole).name() == LABEL_COLOURS[u.label]
    assert model.data(model.index(0, 1), role.ForegroundRole) is None
    assert model.data(model.index(0, 2), role.TextAlignmentRole) is not None
    assert model.data(model.index(0, 1), role.ToolTipRole) == u.transcript
    assert model.data(model.index(0, 1), role.DecorationRole) is None
    assert model.data(model.index(1, 1)) is None  # no such row


def test_camera_preview_takes_frames_from_another_thread(qtbot) -> None:
    slot = FrameSlot()
    window = DashboardWindow(History(), preview=slot)
    qtbot.addWidget(window)
    frame = np.zeros((120, 160, 3), np.uint8)
    pusher = threading.Thread(target=slot.push, args=(frame, (40, 30, 50, 60)))
    pusher.start()
    pusher.join()
    assert window.preview is not None and window.preview.poll()
    assert not window.preview.poll()  # nothing new


def test_display_available(monkeypatch) -> None:
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert display_available() is (not sys.platform.startswith("linux"))
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    assert display_available()


def test_bad_endpoint_exits_with_status_2(qtbot) -> None:
    assert run_dashboard(DashboardOptions(connect="tcp://nohost:notaport", duration_s=1)) == 2


def test_options_are_validated() -> None:
    with pytest.raises(ValueError):
        DashboardOptions(screenshot=Path("x.png"))  # needs --duration
    with pytest.raises(ValueError):
        SubscriberOptions(endpoint="localhost:5556")


def test_curve_subscriber_needs_the_server_key(qtbot, tmp_path: Path) -> None:
    import zmq.auth

    public_file, secret_file = zmq.auth.create_certificates(str(tmp_path), "server")
    server_public, server_secret = zmq.auth.load_certificate(secret_file)
    pub = zmq.Context.instance().socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub.curve_server = True
    pub.curve_secretkey = server_secret
    pub.curve_publickey = server_public
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    endpoint = f"tcp://127.0.0.1:{port}"
    keyed = Subscriber(SubscriberOptions(endpoint=endpoint, curve_server_key=Path(public_file)))
    plain = Subscriber(SubscriberOptions(endpoint=endpoint))
    status = next(x for x in _msgs(SyntheticOptions(duration_s=1.0)) if x.TOPIC == m.TOPIC_STATUS)
    try:
        for _ in range(100):
            pub.send_multipart(m.encode(status.TOPIC, status))
            qtbot.wait(20)
            if keyed.received:
                break
        assert keyed.received > 0 and plain.received == 0
    finally:
        keyed.close()
        plain.close()
        pub.close(linger=0)


def test_screenshot_of_a_realistic_minute(qtbot, publisher: Publisher, tmp_path) -> None:
    """`python -m ui --duration --screenshot` on a minute of data. Set AFFECT_MONITOR_DOCS_SHOT=1
    to write it to docs/dashboard.png (the README's picture) instead of a temporary folder."""
    in_docs = os.environ.get("AFFECT_MONITOR_DOCS_SHOT") == "1"
    out = REPO / "docs" / "dashboard.png" if in_docs else tmp_path / "dashboard.png"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    # The window's 3 s start when it exists; on a loaded machine its imports alone can take
    # longer than that, so the data goes out once its socket has connected, not after a guess.
    monitor = publisher.sock.get_monitor_socket(zmq.EVENT_ACCEPTED)
    proc = subprocess.Popen(
        [sys.executable, "-m", "ui", "--connect", publisher.endpoint, "--duration", "3",
         "--screenshot", str(out)], cwd=REPO, env=env)
    try:
        assert monitor.poll(60_000), "the dashboard never connected"
        msgs = _msgs(SyntheticOptions(duration_s=60.0))
        warm = [x for x in msgs if x.TOPIC == m.TOPIC_STATUS][:1]
        for _ in range(20):  # connected; its subscription follows within milliseconds
            publisher.send(warm)
            qtbot.wait(25)
        publisher.send(msgs)
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
        publisher.sock.disable_monitor()
        monitor.close(linger=0)
    _assert_screenshot_shows_the_minute(out)


def _colour_pixels(image: np.ndarray, colour: str, tolerance: int = 6) -> int:
    """Pixels of `image` (RGB) within `tolerance` of `colour` on every channel."""
    from PyQt6.QtGui import QColor

    rgb = np.array(QColor(colour).getRgb()[:3], np.int16)
    return int((np.abs(image.astype(np.int16) - rgb).max(axis=2) <= tolerance).sum())


def _assert_screenshot_shows_the_minute(path: Path) -> None:
    """The picture, not just the file: a window-sized image whose plot has the final intensity
    line and a shaded utterance span of each label the minute contains."""
    from PyQt6.QtGui import QImage

    from ui.dashboard import _SPAN_BRUSHES, FINAL_PEN

    image = QImage(str(path)).convertToFormat(QImage.Format.Format_RGB888)
    assert not image.isNull() and image.width() >= 800 and image.height() >= 500
    stride = image.bytesPerLine()
    raw = np.frombuffer(image.constBits().asstring(stride * image.height()), np.uint8)
    rgb = raw.reshape(image.height(), stride)[:, : image.width() * 3].reshape(
        image.height(), image.width(), 3)
    assert len(np.unique(rgb.reshape(-1, 3), axis=0)) > 50  # a drawn window, not a blank one
    assert _colour_pixels(rgb, FINAL_PEN) > 200  # the intensity line
    for label, brush in _SPAN_BRUSHES.items():
        assert _colour_pixels(rgb, brush.color().name(), tolerance=3) > 500, label


def test_steps_at_nearly_the_same_time_still_draw(qtbot, dashboard) -> None:
    """Schema-valid steps whose times all but coincide once made pyqtgraph's automatic
    downsampling ask numpy for an impossible reshape (found by the fuzz test above)."""
    window, sub = dashboard
    frames = []
    for seq, t in enumerate([0.0, 5e-324, 1e-300]):
        obj = dict(VALID[m.TOPIC_STEP])
        obj.update(seq=seq, revision=0, t_start=t, t_end=t, final=True, intensity=1.0)
        frames.append([m.TOPIC_STEP.encode(), json.dumps(obj).encode()])
    window.on_messages([msg for f in frames if (msg := sub.decode(f)) is not None])
    window.refresh()
    assert window.frames_drawn >= 1
    assert window.draw_errors == 0
