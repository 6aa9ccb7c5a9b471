"""realtime/extractors/shared_expression.py: several streams' faces through one expression network
give what the network gives each stream alone, concurrent faces run as one batch, a face that
fails the network fails only its own stream, and a face extractor works the same on a handle."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from realtime.extractors.expression_net import ExpressionModelError, ExpressionNet
from realtime.extractors.face import FaceExtractor
from realtime.extractors.shared_expression import SharedExpressionNet
from realtime.sources.base import records
from realtime.sources.media_file import MediaFileOptions, MediaFileSource
from tests.test_face import carphone_path

N_STREAMS = 3
N_FACES = 12


@pytest.fixture(scope="module")
def net() -> ExpressionNet:
    return ExpressionNet()


def faces(seed: int, n: int = N_FACES) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (1, 64, 64), dtype=np.uint8) for _ in range(n)]


def run_streams(shared: SharedExpressionNet, streams: list[list[np.ndarray]]) -> list[list]:
    handles = [shared.handle() for _ in streams]
    out: list[list] = [[] for _ in streams]
    barrier = threading.Barrier(len(streams))

    def work(k: int) -> None:
        for face in streams[k]:
            barrier.wait()  # the streams' analyses coincide, as at one video frame time
            out[k].append(handles[k].predict(face))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(streams))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return out


def test_concurrent_streams_get_what_each_gets_alone_in_batches(net: ExpressionNet) -> None:
    streams = [faces(seed) for seed in range(N_STREAMS)]
    alone = [[net.predict(f) for f in s] for s in streams]
    shared = SharedExpressionNet(net, max_wait_s=0.2)  # generous: the threads really meet
    try:
        together = run_streams(shared, streams)
        stats = shared.stats()
    finally:
        assert shared.shutdown()
    for k in range(N_STREAMS):
        assert len(together[k]) == N_FACES
        for got, want in zip(together[k], alone[k]):
            assert got.shape == (1, 7)
            np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    assert stats["requests"] == N_STREAMS * N_FACES
    assert stats["network_calls"] < stats["requests"]
    assert stats["mean_batch"] > 1.5, stats


def test_a_bad_face_fails_only_its_own_stream(net: ExpressionNet) -> None:
    class Picky:  # the real network, refusing all-black faces, as a broken input would be
        def predict(self, batch: np.ndarray) -> np.ndarray:
            if (batch.reshape(len(batch), -1).max(axis=1) == 0).any():
                raise RuntimeError("a face of zeros")
            return net.predict(batch)

    shared = SharedExpressionNet(Picky(), max_wait_s=0.2)
    good, bad = shared.handle(), shared.handle()
    results: dict[str, object] = {}

    def call(name: str, handle, face: np.ndarray) -> None:  # noqa: ANN001
        try:
            results[name] = handle.predict(face)
        except Exception as exc:
            results[name] = exc

    threads = [
        threading.Thread(target=call, args=("good", good, faces(1, 1)[0])),
        threading.Thread(target=call, args=("bad", bad, np.zeros((1, 64, 64), np.uint8))),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    shared.shutdown()
    assert isinstance(results["good"], np.ndarray)
    np.testing.assert_allclose(results["good"], net.predict(faces(1, 1)[0]), atol=1e-5)
    assert isinstance(results["bad"], RuntimeError)


def test_handles_refuse_wrong_shapes_and_work_after_shutdown_is_refused(net: ExpressionNet) -> None:
    shared = SharedExpressionNet(net)
    handle = shared.handle()
    with pytest.raises(ValueError, match="64, 64"):
        handle.predict(np.zeros((1, 32, 32), np.uint8))
    assert handle.predict(faces(2, 1)[0]).shape == (1, 7)  # alone: runs on the caller's thread
    assert shared.shutdown()
    with pytest.raises(ExpressionModelError, match="shut down"):
        handle.predict(faces(2, 1)[0])
    with pytest.raises(ExpressionModelError, match="shut down"):
        shared.handle()


def test_a_face_extractor_on_a_handle_matches_one_with_its_own_network(net: ExpressionNet) -> None:
    """The packaged talking-face clip through a face extractor with its own network and one on a
    handle of the shared network: the same features, frame by frame."""
    source = MediaFileSource(MediaFileOptions(carphone_path()))
    shared = SharedExpressionNet(net)
    source.start()
    try:
        own, on_handle = FaceExtractor(), FaceExtractor(net=shared.handle())
        seen = 0
        for frame in records(source):
            a, b = own.process(frame), on_handle.process(frame)
            assert a.present == b.present
            np.testing.assert_allclose(a.features, b.features, atol=1e-5)
            seen += a.present
        assert seen > 60  # most of the 120 frames have a face: the network really ran
    finally:
        source.stop()
        shared.shutdown()
