"""The ZeroMQ publisher under load and attack, on loopback with real sockets: a subscriber that
reads nothing never slows publishing, eight subscribers each get every message at 10 Hz, and with
CurveZMQ keys only an authorised subscriber holding the server's key receives anything."""

from __future__ import annotations

import os
import stat
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import zmq
import zmq.auth

from contract import messages
from realtime.keys import make_keys
from realtime.publisher import Publisher, PublisherError, PublisherOptions

STEP = messages.StepMessage(
    session="s", seq=0, t_emit=0.0, t_start=0.0, t_end=0.1, intensity=0.5,
    modality_weights=messages.ModalityWeights(0.3, 0.3, 0.4),
    present=messages.Presence(True, True, True), revision=0, final=False, latency_ms=12.0,
)  # fmt: skip


@pytest.fixture
def ctx():
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


def _subscriber(ctx: zmq.Context, endpoint: str, rcvhwm: int = 0, **curve: bytes) -> zmq.Socket:
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.RCVHWM, rcvhwm)
    for name, value in curve.items():
        setattr(sub, name, value)
    sub.setsockopt(zmq.SUBSCRIBE, b"msrg.")
    sub.connect(endpoint)
    return sub


def _drain(sub: zmq.Socket) -> list[dict]:
    out = []
    while sub.poll(0):
        out.append(messages.decode(sub.recv_multipart())[1])
    return out


def _join(pub: Publisher, subs: list[zmq.Socket], timeout_s: float = 5.0) -> None:
    """Publish markers until every subscriber has one: ZeroMQ's slow-joiner handshake."""
    pending = set(range(len(subs)))
    deadline = time.monotonic() + timeout_s
    while pending and time.monotonic() < deadline:
        pub.send(replace(STEP, seq=0, session="join"))
        time.sleep(0.02)
        pending = {i for i in pending if not subs[i].poll(0) or _drain(subs[i]) == []}
    assert not pending, f"subscribers {sorted(pending)} never joined"


def _send_times_ms(pub: Publisher, n: int) -> np.ndarray:
    times = np.empty(n)
    for k in range(n):
        msg = replace(STEP, seq=k)
        t0 = time.perf_counter()
        pub.send(msg)
        times[k] = (time.perf_counter() - t0) * 1000
    return times


def test_stuck_subscriber_never_blocks_publishing(ctx) -> None:
    pub = Publisher(PublisherOptions(endpoint="tcp://127.0.0.1:*", send_hwm=100), context=ctx)
    try:
        baseline = _send_times_ms(pub, 2000)
        stuck = _subscriber(ctx, pub.endpoint, rcvhwm=10)  # connects, then never reads
        _join(pub, [stuck])
        # 20 000 messages is over half an hour of steps at 10 Hz, far beyond both queues.
        loaded = _send_times_ms(pub, 20_000)
    finally:
        pub.close()
    assert loaded.max() < 50.0  # never blocked (a blocking send would wait forever here)
    assert np.percentile(loaded, 99) < max(1.0, 3 * np.percentile(baseline, 99))


def test_eight_subscribers_each_get_every_message_at_10_hz(ctx) -> None:
    pub = Publisher(PublisherOptions(endpoint="tcp://127.0.0.1:*"), context=ctx)
    subs = [_subscriber(ctx, pub.endpoint) for _ in range(8)]
    try:
        _join(pub, subs)
        for sub in subs:
            _drain(sub)
        times_ms = []
        for seq in range(30):  # 3 s at 10 Hz
            t0 = time.perf_counter()
            pub.send(replace(STEP, seq=seq, session="run"))
            times_ms.append((time.perf_counter() - t0) * 1000)
            time.sleep(0.1)
        time.sleep(0.2)
        got = [[m["seq"] for m in _drain(sub) if m["session"] == "run"] for sub in subs]
    finally:
        pub.close()
    assert all(seqs == list(range(30)) for seqs in got), got
    assert max(times_ms) < 20.0  # publishing to 8 costs no more than a copy per socket


def test_publish_cost_with_eight_subscribers_is_within_noise(ctx) -> None:
    """What a step pays to publish: with 0 and with 8 readers draining, same order of cost."""
    pub = Publisher(PublisherOptions(endpoint="tcp://127.0.0.1:*"), context=ctx)
    try:
        none = _send_times_ms(pub, 3000)
        subs = [_subscriber(ctx, pub.endpoint) for _ in range(8)]
        _join(pub, subs)
        eight = _send_times_ms(pub, 3000)  # queued for the readers, drained afterwards
    finally:
        pub.close()
    assert np.median(eight) < np.median(none) + 0.2  # ms: a send is a queue hand-off


# --- security -------------------------------------------------------------------------------------


def test_beyond_loopback_without_keys_is_refused_in_one_line() -> None:
    with pytest.raises(PublisherError) as info:
        Publisher(PublisherOptions(endpoint="tcp://0.0.0.0:5599"))
    text = str(info.value)
    assert "\n" not in text and "--curve-keys" in text and "--insecure" in text


def test_insecure_is_shown_in_security() -> None:
    pub = Publisher(PublisherOptions(endpoint="tcp://0.0.0.0:*", insecure=True))
    try:
        security = pub.security()
    finally:
        pub.close()
    assert security.insecure and not security.loopback and not security.curve
    loop = Publisher(PublisherOptions(endpoint="tcp://127.0.0.1:*", insecure=True))
    try:  # --insecure on loopback exposes nothing, so nothing is flagged
        assert not loop.security().insecure and loop.security().loopback
    finally:
        loop.close()


def test_keys_command_makes_private_secrets(tmp_path: Path) -> None:
    folder = make_keys(tmp_path / "keys", clients=2)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    secrets = sorted(folder.glob("*.key_secret"))
    assert len(secrets) == 3 and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in secrets)
    assert sorted(p.name for p in (folder / "clients").iterdir()) == ["client-1.key",
                                                                      "client-2.key"]


def test_with_keys_only_an_authorised_subscriber_receives(ctx, tmp_path: Path) -> None:
    keys = make_keys(tmp_path / "keys", clients=1)
    server_public, _ = zmq.auth.load_certificate(str(keys / "server.key"))
    client_public, client_secret = zmq.auth.load_certificate(str(keys / "client-1.key_secret"))
    # An intruder with a key pair of its own (not in clients/), and a client given a wrong
    # server key (a man in the middle's), and one with no encryption at all.
    os.mkdir(tmp_path / "other")
    _, intruder_file = zmq.auth.create_certificates(str(tmp_path / "other"), "intruder")
    intruder_public, intruder_secret = zmq.auth.load_certificate(intruder_file)
    _, fake_server_file = zmq.auth.create_certificates(str(tmp_path / "other"), "fake")
    fake_server_public, _ = zmq.auth.load_certificate(fake_server_file)

    pub = Publisher(PublisherOptions(endpoint="tcp://127.0.0.1:*", curve_keys=keys), context=ctx)
    ep = pub.endpoint
    client = {"curve_publickey": client_public, "curve_secretkey": client_secret}
    authorised = _subscriber(ctx, ep, curve_serverkey=server_public, **client)
    others = {
        "plain": _subscriber(ctx, ep),
        "unauthorised key": _subscriber(ctx, ep, curve_serverkey=server_public,
                                        curve_publickey=intruder_public,
                                        curve_secretkey=intruder_secret),
        "wrong server key": _subscriber(ctx, ep, curve_serverkey=fake_server_public, **client),
    }  # fmt: skip
    try:
        received = 0
        deadline = time.monotonic() + 10
        while received < 20 and time.monotonic() < deadline:
            pub.send(STEP)
            time.sleep(0.02)
            received += len(_drain(authorised))
        time.sleep(0.3)
        leaked = {name: len(_drain(sub)) for name, sub in others.items()}
    finally:
        pub.close()
    assert received >= 20
    assert leaked == dict.fromkeys(others, 0)
