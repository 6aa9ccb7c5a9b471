"""ZeroMQ SUB on the GUI thread: drain, decode, count the bad, and track the connection.

The socket's file descriptor is edge-triggered: it signals once when messages arrive and not again
until the queue has been read empty. So every wake-up drains until `zmq.Again`; a short timer
drains too, as a safety net for a missed edge (any zmq call on the socket may consume one). A huge
burst is drained in batches with a zero-delay re-schedule so painting is never starved.
"""

from __future__ import annotations

import enum
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import zmq
from PyQt6.QtCore import QObject, QSocketNotifier, QTimer, pyqtSignal
from zmq.utils.monitor import parse_monitor_message

from contract.messages import TOPICS, Message, MessageError, VersionError, decode_message

log = logging.getLogger(__name__)


class ConnectionState(str, enum.Enum):
    CONNECTING = "connecting"  # never connected yet
    CONNECTED = "connected"  # TCP up and data flowing
    STALLED = "stalled"  # TCP up but nothing received for stall_after_s
    DISCONNECTED = "disconnected"  # lost the publisher; libzmq keeps retrying


@dataclass(frozen=True)
class SubscriberOptions:
    endpoint: str = "tcp://127.0.0.1:5556"
    stall_after_s: float = 3.0  # status comes at 1 Hz, so three silent seconds mean trouble
    safety_drain_ms: int = 100  # drain on this timer too, in case an FD edge was missed
    max_batch: int = 2_000  # messages per drain pass before yielding to the event loop
    receive_hwm: int = 20_000  # queue in libzmq while the GUI is busy; beyond it, drops
    reconnect_ms: int = 200  # libzmq reconnect interval (capped at 10x by backoff)
    curve_server_key: Path | None = None  # publisher's public key file (zmq.auth format)
    curve_client_key: Path | None = None  # our secret key file; ephemeral keys when absent

    def __post_init__(self) -> None:
        if "://" not in self.endpoint:
            raise ValueError(f"endpoint must look like tcp://HOST:PORT, got {self.endpoint!r}")
        if self.stall_after_s <= 0 or self.safety_drain_ms <= 0 or self.max_batch < 1:
            raise ValueError(f"invalid subscriber options {self}")
        if self.curve_client_key is not None and self.curve_server_key is None:
            raise ValueError("a CURVE client key needs --curve-server-key as well")


class Subscriber(QObject):
    """Emits `messages(list[Message])` once per drain pass, and state and counter changes."""

    messages = pyqtSignal(list)
    connection_changed = pyqtSignal(str, int)  # ConnectionState value, reconnect count
    rejected = pyqtSignal(int, int)  # malformed total, wrong-version total

    def __init__(self, options: SubscriberOptions, context: zmq.Context | None = None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.options = options
        self.received = 0
        self.malformed = 0
        self.wrong_version = 0
        self.reconnects = 0
        self.state = ConnectionState.CONNECTING
        self._ever_connected = False
        self._last_message = time.monotonic()
        self._drain_pending = False
        ctx = context or zmq.Context.instance()
        self._sock = ctx.socket(zmq.SUB)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.RCVHWM, options.receive_hwm)
        self._sock.setsockopt(zmq.RECONNECT_IVL, options.reconnect_ms)
        self._sock.setsockopt(zmq.RECONNECT_IVL_MAX, options.reconnect_ms * 10)
        self._sock.setsockopt(zmq.MAXMSGSIZE, 1 << 20)  # garbage this big is cut at the wire
        try:
            if options.curve_server_key is not None:
                _configure_curve(self._sock, options.curve_server_key, options.curve_client_key)
            for topic in TOPICS:
                self._sock.setsockopt(zmq.SUBSCRIBE, topic.encode())
            self._monitor = self._sock.get_monitor_socket(
                zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_SUCCEEDED
                | zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
            )
            self._sock.connect(options.endpoint)
        except Exception:
            if hasattr(self, "_monitor"):  # do not leak the sockets on a bad start
                self._sock.disable_monitor()
                self._monitor.close(linger=0)
            self._sock.close(linger=0)
            raise
        self._notifier = QSocketNotifier(self._sock.getsockopt(zmq.FD),
                                         QSocketNotifier.Type.Read, self)
        self._notifier.activated.connect(self.drain)
        self._mon_notifier = QSocketNotifier(self._monitor.getsockopt(zmq.FD),
                                             QSocketNotifier.Type.Read, self)
        self._mon_notifier.activated.connect(self._drain_monitor)
        self._timer = QTimer(self)
        self._timer.setInterval(options.safety_drain_ms)
        self._timer.timeout.connect(self._tick)
        self._timer.start()
        log.info("subscribing to %s", options.endpoint)

    # --- data -------------------------------------------------------------------------------------

    def drain(self) -> int:
        """Read every queued message (up to max_batch, then re-schedule); returns messages read."""
        self._drain_pending = False
        if self._sock.closed:
            return 0
        good, n = [], 0
        rejected_before = (self.malformed, self.wrong_version)
        while n < self.options.max_batch:
            try:
                frames = self._sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            except zmq.ZMQError as exc:  # e.g. a message over MAXMSGSIZE; keep going
                log.warning("receive failed: %s", exc)
                break
            n += 1
            msg = self.decode(frames)
            if msg is not None:
                good.append(msg)
        else:
            self._schedule_drain()  # more may be queued; let the GUI paint first
        if n:
            self.received += n
            self._last_message = time.monotonic()
            if self.state is not ConnectionState.CONNECTED:
                self._set_state(ConnectionState.CONNECTED)
        if good:
            self.messages.emit(good)
        if (self.malformed, self.wrong_version) != rejected_before:
            self.rejected.emit(self.malformed, self.wrong_version)
        return n

    def decode(self, frames: list[bytes]) -> Message | None:
        """Decode one message, or count it as malformed / wrong version and return None."""
        try:
            return decode_message(frames)
        except VersionError as exc:
            self.wrong_version += 1
            _log_rejection(self.wrong_version, "wrong schema version", exc)
        except MessageError as exc:
            self.malformed += 1
            _log_rejection(self.malformed, "malformed message", exc)
        except Exception:  # a decoder bug must not take the window down
            self.malformed += 1
            log.exception("unexpected error decoding a message")
        return None

    def _schedule_drain(self) -> None:
        if not self._drain_pending:
            self._drain_pending = True
            QTimer.singleShot(0, self.drain)

    # --- connection -------------------------------------------------------------------------------

    def _drain_monitor(self) -> None:
        while not self._monitor.closed:
            try:
                event = parse_monitor_message(self._monitor.recv_multipart(zmq.NOBLOCK))
            except zmq.Again:
                return
            except (zmq.ZMQError, ValueError) as exc:
                log.debug("monitor read failed: %s", exc)
                return
            kind = event["event"]
            if kind == zmq.EVENT_CONNECTED:
                if self._ever_connected:
                    self.reconnects += 1
                    log.info("reconnected to %s (%d)", self.options.endpoint, self.reconnects)
                self._ever_connected = True
                self._last_message = time.monotonic()  # give it stall_after_s to speak
                self._set_state(ConnectionState.CONNECTED)
            elif kind == zmq.EVENT_DISCONNECTED:
                log.info("publisher %s went away; retrying", self.options.endpoint)
                self._set_state(ConnectionState.DISCONNECTED)
            elif kind in (zmq.EVENT_HANDSHAKE_FAILED_AUTH, zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL):
                log.warning("handshake with %s failed (CURVE keys?)", self.options.endpoint)

    def _tick(self) -> None:
        self.drain()
        self._drain_monitor()
        silent_s = time.monotonic() - self._last_message
        if self.state is ConnectionState.CONNECTED and silent_s > self.options.stall_after_s:
            self._set_state(ConnectionState.STALLED)

    def _set_state(self, state: ConnectionState) -> None:
        if state is not self.state:
            self.state = state
            self.connection_changed.emit(state.value, self.reconnects)

    def close(self) -> None:
        """Stop timers and notifiers and close the sockets; safe to call twice."""
        self._timer.stop()
        self._notifier.setEnabled(False)
        self._mon_notifier.setEnabled(False)
        if not self._sock.closed:
            self._sock.disable_monitor()
            self._monitor.close(linger=0)
            self._sock.close(linger=0)


def _configure_curve(sock: zmq.Socket, server_key: Path, client_key: Path | None) -> None:
    """CurveZMQ client: the server's public key plus our key pair (ephemeral if none given)."""
    import zmq.auth  # only needed with keys

    server_public, _ = zmq.auth.load_certificate(str(server_key))
    if client_key is not None:
        public, secret = zmq.auth.load_certificate(str(client_key))
        if secret is None:
            raise ValueError(f"{client_key} holds no secret key (use the .key_secret file)")
    else:
        public, secret = zmq.curve_keypair()
    sock.curve_serverkey = server_public
    sock.curve_publickey = public
    sock.curve_secretkey = secret


def _log_rejection(count: int, what: str, exc: Exception) -> None:
    # The first few are logged in full, then one in a hundred: a flood must not flood the log.
    if count <= 5 or count % 100 == 0:
        log.warning("%s #%d ignored: %s", what, count, exc)
