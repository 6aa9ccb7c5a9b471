"""ZeroMQ PUB outlet of the affect stream: loopback by default, CurveZMQ or an explicit --insecure
beyond it, and never blocking the pipeline (a slow subscriber loses messages, not our time)."""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
from dataclasses import dataclass
from pathlib import Path

import zmq

from contract import messages

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "tcp://127.0.0.1:5556"
_TCP = re.compile(r"^tcp://(?P<host>\[[^\]]+\]|[^:/]+):(?P<port>\d+|\*)$")


class PublisherError(RuntimeError):
    """The endpoint cannot be bound; the message is one line with what to do."""


@dataclass(frozen=True)
class PublisherOptions:
    endpoint: str = DEFAULT_ENDPOINT
    curve_keys: Path | None = None  # folder from `python -m realtime.keys DIR`
    insecure: bool = False  # allow a non-loopback bind without encryption
    send_hwm: int = 1000  # messages queued per subscriber before ZeroMQ drops them


def is_loopback_endpoint(endpoint: str) -> bool:
    """True when only this machine can connect: ipc://, inproc://, or tcp on a loopback address."""
    if endpoint.startswith(("ipc://", "inproc://")):
        return True
    match = _TCP.match(endpoint)
    if not match:
        return False
    host = match["host"].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:  # a host name: loopback only if every address it resolves to is
            infos = socket.getaddrinfo(host, None)
        except OSError:
            return False
        return bool(infos) and all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)


def validate_endpoint(endpoint: str) -> None:
    if endpoint.startswith(("ipc://", "inproc://")):
        return
    match = _TCP.match(endpoint)
    if not match or (match["port"] != "*" and not 0 < int(match["port"]) < 65536):
        raise PublisherError(
            f"--publish {endpoint!r} is not a ZeroMQ endpoint; use e.g. {DEFAULT_ENDPOINT}"
        )


class Publisher:
    """Binds on construction; `send` validates and publishes one message without blocking."""

    def __init__(self, options: PublisherOptions, context: zmq.Context | None = None) -> None:
        validate_endpoint(options.endpoint)
        self.options = options
        self.loopback = is_loopback_endpoint(options.endpoint)
        if not self.loopback and options.curve_keys is None and not options.insecure:
            raise PublisherError(
                f"--publish {options.endpoint} is reachable from other machines; affect data is "
                "personal: add --curve-keys DIR (make keys with python -m realtime.keys DIR) "
                "or pass --insecure to publish unencrypted"
            )
        self._context = context or zmq.Context.instance()
        self._auth = None
        self._socket = self._context.socket(zmq.PUB)
        self._socket.setsockopt(zmq.SNDHWM, options.send_hwm)
        self._socket.setsockopt(zmq.LINGER, 200)
        self.dropped = 0
        try:
            if options.curve_keys is not None:
                self._enable_curve(Path(options.curve_keys))
            self._socket.bind(options.endpoint)
        except zmq.ZMQError as exc:
            self._socket.close(linger=0)
            hint = (
                "the port is in use: pick another with --publish"
                if exc.errno == zmq.EADDRINUSE
                else "check the address"
            )
            raise PublisherError(
                f"cannot bind {options.endpoint}: {exc.strerror}; {hint}"
            ) from None
        self.endpoint = self._socket.getsockopt_string(zmq.LAST_ENDPOINT)
        if not self.loopback and options.curve_keys is None:
            log.warning("publishing UNENCRYPTED beyond loopback on %s (--insecure)", self.endpoint)

    def _enable_curve(self, keys_dir: Path) -> None:
        from zmq.auth import load_certificate
        from zmq.auth.thread import ThreadAuthenticator

        server_secret = keys_dir / "server.key_secret"
        clients = keys_dir / "clients"
        if not server_secret.is_file() or not clients.is_dir():
            raise PublisherError(
                f"--curve-keys {keys_dir} lacks server.key_secret or clients/; "
                f"create them with python -m realtime.keys {keys_dir}"
            )
        public, secret = load_certificate(str(server_secret))
        self._auth = ThreadAuthenticator(self._context)
        self._auth.start()
        self._auth.configure_curve(domain="*", location=str(clients))  # only listed clients
        self._socket.curve_secretkey = secret
        self._socket.curve_publickey = public
        self._socket.curve_server = True

    def security(self) -> messages.Security:
        return messages.Security(
            endpoint=self.endpoint,
            loopback=self.loopback,
            curve=self.options.curve_keys is not None,
            insecure=self.options.insecure
            and not self.loopback
            and self.options.curve_keys is None,
        )

    def send(self, msg: messages.Message) -> list[bytes]:
        frames = messages.encode(msg.TOPIC, msg)
        try:
            self._socket.send_multipart(frames, flags=zmq.NOBLOCK)
        except zmq.Again:  # PUB drops at the high-water mark rather than raising; count if it does
            self.dropped += 1
        return frames

    def close(self) -> None:
        self._socket.close()
        if self._auth is not None:
            self._auth.stop()
            self._auth = None
