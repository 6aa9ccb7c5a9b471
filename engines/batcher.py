"""Requests from several streams gathered into batches for one model: the machinery shared by the
MSRG engine (engines/batching.py) and the face expression network (realtime/extractors/
shared_expression.py).

    batcher = Batcher(run_batch, max_wait_s=0.002, name="engine-batcher", error=MyError)
    owner = object(); batcher.join(owner)       # a stream that will submit (worth waiting for)
    result = batcher.call(Request(owner, payload))  # blocks until run_batch finished it
    batcher.leave(owner)                        # the stream ended: nobody waits for it now
    batcher.shutdown()

A batcher thread takes the first request, waits at most `max_wait_s` after it was submitted (or
less: until every joined owner has a request in), and hands the batch to `run_batch`, which must
finish or fail every request it was given. A stream that stops submitting therefore costs the
others at most `max_wait_s` a call, never a stall. When one owner is the only joined one, its
request runs at once on its own thread: there is nothing to batch with, so no hand-off to pay.
`stats` counts what happened (requests, calls, batch sizes, waits, time in `run_batch`).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Request:
    """One owner's call: what to compute, and where its result (or error) lands."""

    owner: Hashable
    payload: Any
    t_submit: float = field(default_factory=time.monotonic)
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None

    def finish(self, result: Any) -> None:
        self.result = result
        self.done.set()

    def fail(self, error: BaseException) -> None:
        self.error = error
        self.done.set()


@dataclass
class BatchStats:
    """How many calls served how many requests, how big the batches were, and how long requests
    waited for company (the price of batching). `call` names the calls in as_dict's keys."""

    call: str = "engine"
    requests: int = 0
    calls: int = 0
    sizes: collections.Counter = field(default_factory=collections.Counter)  # size -> calls
    wait_s_total: float = 0.0
    wait_s_max: float = 0.0
    call_s_total: float = 0.0

    def add(self, waits: list[float], call_s: float) -> None:
        self.requests += len(waits)
        self.calls += 1
        self.sizes[len(waits)] += 1
        self.wait_s_total += sum(waits)
        self.wait_s_max = max(self.wait_s_max, *waits)
        self.call_s_total += call_s

    def as_dict(self) -> dict[str, Any]:
        calls = max(self.calls, 1)
        return {
            "requests": self.requests,
            f"{self.call}_calls": self.calls,
            "mean_batch": round(self.requests / calls, 3),
            "batch_sizes": {str(k): v for k, v in sorted(self.sizes.items())},
            "wait_ms_mean": round(1000 * self.wait_s_total / max(self.requests, 1), 4),
            "wait_ms_max": round(1000 * self.wait_s_max, 4),
            f"{self.call}_ms_per_call": round(1000 * self.call_s_total / calls, 4),
        }


class Batcher:
    """Owns the batcher thread; `run_batch(requests)` runs on it (or on a lone caller's thread)
    and must finish or fail each request. `error(message)` builds the one-line error raised to
    callers once the batcher is shut down."""

    def __init__(
        self,
        run_batch: Callable[[list[Request]], None],
        max_wait_s: float,
        name: str,
        error: Callable[[str], Exception],
        call: str = "engine",
    ) -> None:
        if not (0.0 <= max_wait_s <= 1.0):
            raise ValueError(f"max_wait_s must be in [0, 1] seconds, got {max_wait_s}")
        self.max_wait_s = max_wait_s
        self.name = name
        self._run_batch = run_batch
        self._error = error
        self._cond = threading.Condition()
        self._pending: list[Request] = []
        self._joined: set[Hashable] = set()  # owners the batcher waits for
        self._closed = False
        self._stats = BatchStats(call)
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ owners
    def join(self, owner: Hashable) -> None:
        with self._cond:
            if self._closed:
                raise self._error(f"the {self.name} is shut down; create a new one")
            self._joined.add(owner)

    def leave(self, owner: Hashable) -> None:
        with self._cond:
            self._joined.discard(owner)
            self._cond.notify_all()  # the batcher may have been waiting for it

    def call(self, request: Request) -> Any:
        """Submit and wait: the request's result, or its error raised here."""
        self._submit(request)
        while not request.done.wait(0.5):
            if not self.running:
                raise self._error(f"the {self.name} thread has stopped")
        if request.error is not None:
            raise request.error
        return request.result

    def account(self, group: list[Request], started: float) -> None:
        """`run_batch` reports one call that served `group`, begun at monotonic `started`."""
        waits = [started - r.t_submit for r in group]
        with self._cond:
            self._stats.add(waits, time.monotonic() - started)

    def stats(self) -> dict[str, Any]:
        with self._cond:
            return self._stats.as_dict()

    def shutdown(self, timeout_s: float = 2.0) -> bool:
        """Run what is already submitted, refuse anything new, join the thread. True if joined."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            log.warning("%s still running after %.1f s", self.name, timeout_s)
            return False
        return True

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    # ------------------------------------------------------------------ the thread
    def _submit(self, request: Request) -> None:
        """Queue `request`, or run it at once on the caller's thread when its owner is the only
        joined one: nobody to batch with."""
        with self._cond:
            if self._closed:
                raise self._error(f"the {self.name} is shut down; no more calls")
            self._joined.add(request.owner)  # an owner that left and calls again is back
            alone = not self._pending and self._joined == {request.owner}
            if not alone:
                self._pending.append(request)
                self._cond.notify_all()
                return
        self._run([request])

    def _loop(self) -> None:
        while True:
            batch, last = self._gather()
            if batch:
                self._run(batch)
            if last:
                return

    def _gather(self) -> tuple[list[Request], bool]:
        """Wait for a first request, then for the other joined owners, at most max_wait_s
        after the first was submitted. Returns the batch and whether the thread should end."""
        with self._cond:
            while not self._pending and not self._closed:
                self._cond.wait()
            if self._pending and not self._closed:
                deadline = self._pending[0].t_submit + self.max_wait_s
                while not self._closed:
                    missing = self._joined.difference(r.owner for r in self._pending)
                    remaining = deadline - time.monotonic()
                    if not missing or remaining <= 0:
                        break
                    self._cond.wait(remaining)
            batch, self._pending = self._pending, []
            return batch, self._closed

    def _run(self, batch: list[Request]) -> None:
        try:
            self._run_batch(batch)
        except BaseException as exc:  # a bug there must reach the callers, not hang them
            fail_unfinished(batch, exc)


def fail_unfinished(requests: list[Request], error: BaseException) -> None:
    """Fail every request not yet finished or failed, so no caller waits for ever."""
    for request in requests:
        if not request.done.is_set():
            request.fail(error)
