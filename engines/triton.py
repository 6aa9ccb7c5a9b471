"""Triton engine: the MSRG step served by a Triton Inference Server over gRPC.

    engine = load_engine("triton", "model.pt", triton_url="triton.lab:8001")

Many capture processes on many machines share one server. Each stream of a state is one Triton
*sequence* with a random 63-bit correlation id: `sequence_start` on its first step, `sequence_end`
from `engine.close(state)` (or, if the client vanishes, the server's idle timeout).

State lives on the server. The EngineState holds references, not tensors: the streams'
correlation ids, the id of the server-side state each stream is at, and the step count.

States as values, honestly:
  - `cpu` repository (engines/triton_cpu_model.py): the server keeps each stream's last
    `state_history` states (128 by default), each under an id chosen here; a step names the
    state it starts from. So a saved state can be stepped from again (the pipeline's revision
    re-run) while it is among the stream's last `state_history` states; an older one is refused
    with a one-line EngineError naming that limit.
  - `gpu` repository (implicit state in Triton's sequence batcher): the server keeps only the
    newest state. Stepping from any other state (a re-run) raises EngineError: re-running a
    provisional tail is unsupported there, and the error says so.
A stream the server no longer knows (server restarted, or idle past its timeout) is restarted
from the zero state with a warning and counted in `engine.restarted_streams`; the call that
found the server down raises EngineError, the next one after the server is back restarts.

The checkpoint is loaded here too: its config gives the shapes, its sha256 must equal the
`checkpoint_digest` the repository was written for (a one-line EngineError otherwise).
"""

from __future__ import annotations

import logging
import secrets
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from engines.base import (
    STEP_INPUT_NAMES,
    STEP_OUTPUT_NAMES,
    UTTERANCE_OUTPUT_NAMES,
    BackendEngine,
    EngineError,
    EngineState,
    EngineUnavailable,
    StepInputs,
    StepResult,
    UtteranceInputs,
    UtteranceResult,
    pad_utterance,
)
from engines.triton_repo import PARENT, STATE_ID, STEP_MODEL, UTTERANCE_MODEL

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install -e .[triton]"
DEFAULT_URL = "127.0.0.1:8001"


@dataclass(frozen=True)
class TritonOptions:
    url: str = DEFAULT_URL  # HOST:PORT of the server's gRPC endpoint
    step_model: str = STEP_MODEL
    utterance_model: str = UTTERANCE_MODEL
    timeout_s: float = 10.0  # per request; a step that takes longer is a failed step

    def __post_init__(self) -> None:
        host, _, port = self.url.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"triton_url must be HOST:PORT, got {self.url!r}")
        if self.timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {self.timeout_s}")


@dataclass(frozen=True)
class StreamRefs:
    """What an EngineState of this engine holds: per stream, the correlation id and the id of
    its server-side state (0 = the zero state, before the first step), and the step count."""

    sequence_ids: tuple[int, ...]
    state_ids: tuple[int, ...]
    step: int


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "message", lambda: None)() or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class TritonEngine(BackendEngine):
    name = "triton"

    def __init__(self, config: Any, digest: str, options: TritonOptions) -> None:
        super().__init__(config)
        try:
            import tritonclient.grpc as grpcclient
            from tritonclient.utils import InferenceServerException
        except ImportError:
            raise EngineUnavailable(
                f"triton engine unavailable: tritonclient is not installed; {INSTALL_HINT}"
            ) from None
        self._grpc, self._ServerError = grpcclient, InferenceServerException
        self.options = options
        self.client = grpcclient.InferenceServerClient(options.url)
        try:
            ready = self.client.is_server_ready(client_timeout=options.timeout_s)
            models = [
                self.client.get_model_config(m, as_json=True, client_timeout=options.timeout_s)
                for m in (options.step_model, options.utterance_model)
            ]
        except InferenceServerException as exc:
            raise EngineUnavailable(
                f"triton engine unavailable: no Triton server with models {options.step_model} "
                f"and {options.utterance_model} at {options.url} ({_first_line(exc)})"
            ) from None
        if not ready:
            raise EngineUnavailable(f"triton engine unavailable: server at {options.url} is "
                                    "not ready")  # fmt: skip
        step_cfg = models[0]["config"]
        served = {k: v["string_value"] for k, v in step_cfg.get("parameters", {}).items()}
        if served.get("checkpoint_digest") != digest:
            raise EngineError(
                f"the Triton server at {options.url} serves another checkpoint "
                f"({served.get('checkpoint_digest', '?')[:12]}, ours {digest[:12]}); rewrite its "
                "repository with python -m engines.triton_repo --checkpoint CKPT"
            )
        # The cpu repository names the state a step starts from; the gpu one cannot.
        self.history = PARENT in {i["name"] for i in step_cfg["input"]}
        self.max_batch = int(models[1]["config"].get("max_batch_size", 1))
        self.restarted_streams = 0
        self._lock = threading.Lock()  # the bookkeeping below is shared by the caller's threads
        self._next_state: dict[int, int] = {}  # sequence id -> next state id to hand out
        self._newest: dict[int, int] = {}  # sequence id -> newest state id on the server
        self._floor: dict[int, int] = {}  # ids below this were lost in a server restart
        self._closed: set[int] = set()  # so a closed stream is refused, not silently restarted
        self.selection_note = f"triton requested explicitly; server {options.url}"

    # ----------------------------------------------------------------- the contract
    def _initial(self, batch_size: int) -> tuple[StreamRefs]:
        ids = tuple(secrets.randbits(63) or 1 for _ in range(batch_size))
        return (StreamRefs(ids, (0,) * batch_size, 0),)

    def _plan(self, seq: int, parent: int) -> tuple[int, int, bool]:
        """(parent to send, new state id, start flag) for one stream's next step."""
        with self._lock:
            if seq in self._closed:
                raise EngineError(f"stream {seq} was closed; start again from initial_state()")
            start = seq not in self._next_state
            if start:
                self._next_state[seq], self._newest[seq], self._floor[seq] = 1, 0, 0
            if parent < self._floor[seq] and parent != 0:
                log.warning("stream %d: state %d was lost in a server restart; stepping from "
                            "the zero state", seq, parent)  # fmt: skip
                parent = 0
            if not self.history and parent != self._newest[seq]:
                raise EngineError(
                    "re-running from an earlier state is unsupported by the Triton gpu "
                    "repository (it keeps only each stream's newest state); serve the cpu "
                    "repository or use another engine for revisions"
                )
            new = self._next_state[seq]
            self._next_state[seq] = new + 1
            return parent, new, start

    def _request(self, seq: int, parent: int, new: int, row: dict[str, np.ndarray],
                 start: bool, end: bool = False) -> dict:  # fmt: skip
        inputs = []
        for name, arr in row.items():
            tensor = self._grpc.InferInput(name, list(arr.shape), "FP32")
            tensor.set_data_from_numpy(arr)
            inputs.append(tensor)
        if self.history:
            for name, value in ((PARENT, parent), (STATE_ID, new)):
                tensor = self._grpc.InferInput(name, [1, 1], "UINT64")
                tensor.set_data_from_numpy(np.array([[value]], np.uint64))
                inputs.append(tensor)
        return dict(
            model_name=self.options.step_model, inputs=inputs, sequence_id=seq,
            sequence_start=start, sequence_end=end, client_timeout=self.options.timeout_s,
            outputs=[self._grpc.InferRequestedOutput(n) for n in STEP_OUTPUT_NAMES],
        )  # fmt: skip

    def _infer_all(self, requests: list[dict]) -> list[Any]:
        """Send every stream's request at once (the server batches them); results or errors."""
        if len(requests) == 1:
            try:
                return [self.client.infer(**requests[0])]
            except self._ServerError as exc:
                return [exc]
        results: list[Any] = [None] * len(requests)
        done = threading.Semaphore(0)

        def callback(i: int, result: Any, error: Any) -> None:
            results[i] = error if error is not None else result
            done.release()

        for i, req in enumerate(requests):
            req = {k: v for k, v in req.items() if k != "client_timeout"}
            self.client.async_infer(
                callback=lambda result, error, i=i: callback(i, result, error),
                client_timeout=self.options.timeout_s, **req,
            )  # fmt: skip
        for _ in requests:
            # The client's own timeout answers every request; this bound only guards a bug.
            if not done.acquire(timeout=self.options.timeout_s + 5.0):
                break
        return [TimeoutError("no answer") if r is None else r for r in results]

    def _step(
        self, tensors: tuple[StreamRefs], inputs: StepInputs
    ) -> tuple[StepResult, tuple[StreamRefs]]:
        refs = tensors[0]
        plans = [self._plan(s, p) for s, p in zip(refs.sequence_ids, refs.state_ids)]
        rows = [{n: getattr(inputs, n)[b : b + 1] for n in STEP_INPUT_NAMES}
                for b in range(inputs.batch_size)]  # fmt: skip  # (1, D) per stream
        requests = [
            self._request(seq, parent, new, row, start)
            for seq, (parent, new, start), row in zip(refs.sequence_ids, plans, rows)
        ]
        results = self._infer_all(requests)
        for b, result in enumerate(results):
            if isinstance(result, self._ServerError) and self._lost(result):
                results[b] = self._restart(refs.sequence_ids[b], plans[b][1], requests[b], rows[b])
        failed = [r for r in results if not hasattr(r, "as_numpy")]
        if failed:
            raise EngineError(f"Triton step failed at {self.options.url}: "
                              f"{_first_line(failed[0])}")  # fmt: skip
        with self._lock:
            for seq, (_, new, _) in zip(refs.sequence_ids, plans):
                self._newest[seq] = new
        # Each result is (1, 1) or (1, 3) per stream; the contract wants (B,) and (B, 3).
        out = [np.concatenate([r.as_numpy(n) for r in results]) for n in STEP_OUTPUT_NAMES]
        step = StepResult(out[0].reshape(-1), out[1].reshape(-1, 3), out[2].reshape(-1))
        new_refs = StreamRefs(refs.sequence_ids, tuple(p[1] for p in plans), refs.step + 1)
        return step, (new_refs,)

    @staticmethod
    def _lost(exc: Exception) -> bool:
        """Did the server forget this stream (restart, idle timeout) rather than fail?"""
        text = _first_line(exc)
        return "must specify the START flag" in text or "unknown stream" in text

    def _restart(self, seq: int, new: int, request: dict, row: dict) -> Any:
        log.warning("Triton server at %s no longer knows stream %d (restarted or idle); "
                    "restarting it from the zero state", self.options.url, seq)  # fmt: skip
        with self._lock:
            self.restarted_streams += 1
            self._floor[seq] = new  # states handed out before this one are gone
        retry = self._request(seq, 0, new, row, start=True)
        try:
            return self.client.infer(**retry)
        except self._ServerError as exc:
            return exc

    def close(self, state: EngineState) -> None:
        """End the state's streams on the server (frees their state there). Idempotent."""
        refs: StreamRefs = state.tensors[0]
        zeros = {
            "text": np.zeros((1, self.config.text_dim), np.float32),
            "audio": np.zeros((1, self.config.audio_dim), np.float32),
            "visual": np.zeros((1, self.config.visual_dim), np.float32),
            "mask": np.zeros((1, 3), np.float32),
        }
        requests = []
        with self._lock:
            for seq in refs.sequence_ids:
                if seq not in self._next_state:
                    continue  # never started, or already closed
                newest = self._newest.pop(seq)
                new = self._next_state.pop(seq)
                self._floor.pop(seq, None)
                self._closed.add(seq)
                requests.append(self._request(seq, newest, new, zeros, start=False, end=True))
        for result in self._infer_all(requests) if requests else []:
            if not hasattr(result, "as_numpy"):  # the stream is gone either way
                log.info("closing a Triton stream: %s", _first_line(result))

    def _utterance(self, inputs: UtteranceInputs) -> UtteranceResult:
        feed = pad_utterance(inputs, self.config.max_utterance_steps)  # (B, L, ...)
        parts: list[list[np.ndarray]] = []
        for lo in range(0, inputs.batch_size, self.max_batch):
            tensors = []
            for name, arr in feed.items():
                chunk = np.ascontiguousarray(arr[lo : lo + self.max_batch])
                tensor = self._grpc.InferInput(name, list(chunk.shape), "FP32")
                tensor.set_data_from_numpy(chunk)
                tensors.append(tensor)
            try:
                result = self.client.infer(
                    self.options.utterance_model, tensors, client_timeout=self.options.timeout_s
                )
            except self._ServerError as exc:
                raise EngineError(
                    f"Triton utterance failed at {self.options.url}: {_first_line(exc)}"
                ) from None
            parts.append([result.as_numpy(n).reshape(-1) for n in UTTERANCE_OUTPUT_NAMES])
        return UtteranceResult(*(np.concatenate(col) for col in zip(*parts)))

    def describe(self) -> str:
        return f"{self.name} at {self.options.url} ({'cpu' if self.history else 'gpu'} repository)"


def connect(loaded: Any, url: str = DEFAULT_URL) -> TritonEngine:
    """`loaded` is a msrg.checkpoint.LoadedCheckpoint; its config and digest must match the
    server's repository."""
    try:
        options = TritonOptions(url=url)
    except ValueError as exc:  # a usage error, reported like the other engine errors
        raise EngineError(str(exc)) from None
    return TritonEngine(loaded.config, loaded.digest, options)
