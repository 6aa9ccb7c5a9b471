"""One expression network for several streams: faces analysed at about the same time run as one
batch, as the streams' MSRG steps do (engines/batching.py).

    shared = SharedExpressionNet(max_wait_s=0.002)
    face_a = FaceExtractor(net=shared.handle())     # each stream's face extractor gets a handle
    ...
    shared.shutdown()

Why: realtime.multi gives every stream its own face extractor (the cascade search keeps
per-stream state and is not thread-safe), and each loaded its own ONNX Runtime session of the
network. Sharing one keeps one copy of the weights and turns N batch-1 calls into one call at
batch N when the streams' analyses coincide. The batcher (engines/batcher.py) waits at most
`max_wait_s` for the other streams' faces, so a stream whose face is away, or that has ended,
costs the others at most that per analysis. A batch that fails is re-run face by face, so the
error reaches only the stream whose face caused it.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from engines.batcher import Batcher, Request
from realtime.extractors.expression_net import (
    INPUT_SIZE_PX,
    ExpressionModelError,
    ExpressionNet,
    Expressions,
)

DEFAULT_MAX_WAIT_S = 0.002  # a face analysis every 100 ms per stream; a wait of 2 ms is noise


class SharedExpressionNet:
    """Owns the network and its batcher thread; `handle()` gives each stream its `predict`."""

    def __init__(
        self, net: Expressions | None = None, max_wait_s: float = DEFAULT_MAX_WAIT_S
    ) -> None:
        self.net = net if net is not None else ExpressionNet()
        self._batcher = Batcher(
            self._run, max_wait_s, "expression-batcher", ExpressionModelError, call="network"
        )

    def handle(self) -> ExpressionHandle:
        h = ExpressionHandle(self._batcher)
        self._batcher.join(h)
        return h

    def stats(self) -> dict[str, Any]:
        """Requests (faces), network calls, batch sizes, waits: engines/batcher.py's BatchStats."""
        return self._batcher.stats()

    def shutdown(self, timeout_s: float = 2.0) -> bool:
        return self._batcher.shutdown(timeout_s)

    def _run(self, batch: list[Request]) -> None:
        started = time.monotonic()
        faces = [r.payload for r in batch]
        try:
            probabilities = self.net.predict(np.concatenate(faces))
        except Exception as exc:
            if len(batch) == 1:
                batch[0].fail(exc)
            else:  # find the stream whose faces failed: each alone
                for request in batch:
                    self._run([request])
            return
        self._batcher.account(batch, started)
        bounds = np.cumsum([0] + [len(f) for f in faces])
        for request, a, b in zip(batch, bounds[:-1], bounds[1:]):
            request.finish(probabilities[a:b])


class ExpressionHandle:
    """One stream's view of the shared network: the `predict` a FaceExtractor calls."""

    def __init__(self, batcher: Batcher) -> None:
        self._batcher = batcher

    def predict(self, faces: np.ndarray) -> np.ndarray:
        """(B, 64, 64) uint8 grey faces -> (B, 7) float32 probabilities, EXPRESSION_LABELS order."""
        if faces.ndim != 3 or faces.shape[1:] != (INPUT_SIZE_PX, INPUT_SIZE_PX):
            raise ValueError(f"expected (B, 64, 64) grey faces, got {faces.shape}")
        return self._batcher.call(Request(self, faces))

    def close(self) -> None:
        """The stream ended: the others stop waiting for its faces. A later predict rejoins."""
        self._batcher.leave(self)
